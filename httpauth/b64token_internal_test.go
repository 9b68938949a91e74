package httpauth

import (
	"strings"
	"testing"
)

// isB64TokenSpec is RFC 6750's b64token syntax, written plainly: the
// reference isB64Token must agree with.
func isB64TokenSpec(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

func TestIsB64Token(t *testing.T) {
	long := strings.Repeat("eyJhbGciOiJSUzI1NiJ9", 40)
	tests := []string{
		"", "=", "==", "a", "a=", "a==", "=a", "a=a", "a b", "ab\x00", "\xff", "abc.def_ghi~+/-",
		"abcdefg", "abcdefgh", "abcdefghi", "abcdefgh=", "abcdefg=h", "abcdefghijklmno ", " abcdefghijklmnop",
		long, long + "=", long + "==", long + " ", long[:100] + "\n" + long[100:], long + "=x", "=" + long,
		long[:7] + "%" + long[8:], long[:8] + "%" + long[9:], long[:15] + "," + long[16:],
	}
	// Every byte at every position of a 17-byte token (two unrolled
	// blocks and a tail).
	for c := range 256 {
		for i := range 17 {
			b := []byte("abcdefghijklmnopq")
			b[i] = byte(c)
			tests = append(tests, string(b))
		}
	}
	for _, s := range tests {
		if got, want := isB64Token(s), isB64TokenSpec(s); got != want {
			t.Errorf("isB64Token(%q) = %v; want %v", s, got, want)
		}
	}
}

func FuzzIsB64Token(f *testing.F) {
	f.Add("abc.def==")
	f.Add("abcdefgh\x00=")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isB64Token(s), isB64TokenSpec(s); got != want {
			t.Errorf("isB64Token(%q) = %v; want %v", s, got, want)
		}
	})
}

// BenchmarkIsB64Token checks a Keycloak-sized token (about 1 KiB).
func BenchmarkIsB64Token(b *testing.B) {
	tok := strings.Repeat("eyJhbGciOiJSUzI1NiIsInR5cCIgOiAiSldUIn0.", 26)
	for b.Loop() {
		if !isB64Token(tok) {
			b.Fatal("not a b64token")
		}
	}
}
