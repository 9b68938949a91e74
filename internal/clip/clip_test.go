package clip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 8, "short"},
		{"exactly8", 8, "exactly8"},
		{strings.Repeat("k", 11000), 4, "kkkk…(11000 bytes)"},
		{"ééé", 3, "é…(6 bytes)"}, // never half a rune
		{"", 0, ""},
	}
	for _, tt := range tests {
		if got := String(tt.in, tt.n); got != tt.want {
			t.Errorf("String(%.20q, %d) = %q; want %q", tt.in, tt.n, got, tt.want)
		}
	}
	if got := String(strings.Repeat("€", 1000), Log); !utf8.ValidString(got) || len(got) > Log+20 {
		t.Errorf("String of 3000 bytes of € = %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
	}
}

func TestQuote(t *testing.T) {
	if got, want := Quote("a\"b", 8), `"a\"b"`; got != want {
		t.Errorf("Quote = %s; want %s", got, want)
	}
	if got, want := Quote(strings.Repeat("k", 100), 4), `"kkkk"…(100 bytes)`; got != want {
		t.Errorf("Quote = %s; want %s", got, want)
	}
}
