package keygate

import (
	"strings"
	"testing"
)

// TestLowerTyp checks that lowerTyp lowers a header typ exactly as
// strings.ToLower does, which checkType compared with before: a typ that
// lowers to an accepted one must stay accepted, whatever its alphabet.
func TestLowerTyp(t *testing.T) {
	for _, typ := range []string{
		"", "JWT", "jwt", "Jwt", "AT+JWT", "at+jwt", "application/AT+JWT", "Application/At+Jwt",
		"logout+jwt", "JWT ", "@[`{", // the bytes around the ASCII letters
		"applİcation/at+jwt", // U+0130 lowers to i
		"\u212aey",           // the Kelvin sign lowers to k
		"ÄT+JWT", "\xff", strings.Repeat("A", 31), strings.Repeat("A", 32), strings.Repeat("A", 33),
		strings.Repeat("İ", 18),
	} {
		var buf [32]byte
		if got, want := string(lowerTyp(&buf, typ)), strings.ToLower(typ); got != want {
			t.Errorf("lowerTyp(%q) = %q; want %q", typ, got, want)
		}
	}
}

func TestLowerTypAllocs(t *testing.T) {
	var buf [32]byte
	if n := testing.AllocsPerRun(100, func() { lowerTyp(&buf, "Application/At+JWT") }); n != 0 {
		t.Errorf("lowerTyp of an ASCII typ allocates %v times; want 0", n)
	}
}
