package jose

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestScannerSkip(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{`{}`, true},
		{` {"a":[1,-2.5e+3,true,false,null,"x\u00e9\ud83d\ude00"],"b":{"c":{}}} `, true},
		{`[]`, true},
		{`"\"\\\/\b\f\n\r\t"`, true},
		{`0`, true},
		{`-0.0e-0`, true},
		{`{"a":1,}`, false},
		{`{"a" 1}`, false},
		{`{a:1}`, false},
		{`[1,]`, false},
		{`01`, false},
		{`1.`, false},
		{`.5`, false},
		{`+1`, false},
		{`1e`, false},
		{`"\x"`, false},
		{`"\u12"`, false},
		{`"\ud83d"`, false},
		{`"\ude00"`, false},
		{`"` + "\x01" + `"`, false},
		{`"` + "\xff" + `"`, false},
		{`"abc`, false},
		{`tru`, false},
		{`nul`, false},
		{`{} {}`, false},
		{``, false},
		{strings.Repeat("[", 65) + strings.Repeat("]", 65), false},
		{strings.Repeat("[", 64) + strings.Repeat("]", 64), true},
	}
	for _, tt := range tests {
		s := NewScanner(tt.in)
		err := s.Skip()
		if err == nil {
			err = s.End()
		}
		if (err == nil) != tt.ok {
			t.Errorf("Skip(%q) = %v; want ok %v", tt.in, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrSyntax) {
			t.Errorf("Skip(%q) error %v does not match ErrSyntax", tt.in, err)
		}
	}
}

func TestParseHeader(t *testing.T) {
	tests := []struct {
		in   string
		want Header
		err  bool
	}{
		{`{"alg":"RS256","typ":"JWT","kid":"k1"}`, Header{Alg: "RS256", Typ: "JWT", Kid: "k1"}, false},
		{`{"alg":"ES256","x5c":["a"],"jku":"https://evil"}`, Header{Alg: "ES256"}, false},
		{`{"alg":"RS256","crit":["b64"],"b64":false}`, Header{Alg: "RS256", Crit: true}, false},
		{`{"alg":"RS256","crit":null}`, Header{Alg: "RS256", Crit: true}, false},
		{`{"alg":null}`, Header{}, false},
		{`{"alg":"RS256","alg":"none"}`, Header{}, true},
		{`{"alg":1}`, Header{}, true},
		{`{"ALG":"none"}`, Header{}, false},
		{`["alg"]`, Header{}, true},
		{`{"alg":"RS256"}x`, Header{}, true},
	}
	for _, tt := range tests {
		h, err := ParseHeader([]byte(tt.in))
		if (err != nil) != tt.err || err == nil && h != tt.want {
			t.Errorf("ParseHeader(%s) = %+v, %v; want %+v, error %v", tt.in, h, err, tt.want, tt.err)
		}
	}
}

// FuzzScanner checks the scanner against encoding/json: whatever it
// accepts is valid JSON, strings decode to the same text, and valid JSON
// is refused only for the documented stricter rules.
func FuzzScanner(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":"\u00e9"}]}`, `"\ud83d\ude00"`, `-1.5e3`, `[true,false,null]`, `{"a":"\n"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := NewScanner(string(data))
		err := s.Skip()
		if err == nil {
			err = s.End()
		}
		valid := json.Valid(data)
		if err == nil && !valid {
			t.Fatalf("scanner accepted invalid JSON %q", data)
		}
		if err != nil && valid {
			msg := err.Error()
			if !strings.Contains(msg, "UTF-8") && !strings.Contains(msg, "surrogate") && !strings.Contains(msg, "nested too deep") {
				t.Fatalf("scanner refused valid JSON %q: %v", data, err)
			}
		}
		if len(data) > 0 && data[0] == '"' && valid {
			var want string
			json.Unmarshal(data, &want)
			got, err := NewScanner(string(data)).String()
			if err == nil && got != want {
				t.Fatalf("String(%q) = %q; encoding/json says %q", data, got, want)
			}
		}
	})
}

func TestScannerStrings(t *testing.T) {
	tests := []struct {
		in   string
		want []string // nil: null
		err  bool
	}{
		{`null`, nil, false},
		{`[]`, []string{}, false},
		{`["a"]`, []string{"a"}, false},
		{` [ "a" , "b\u00e9" ] `, []string{"a", "bé"}, false},
		{`[1]`, nil, true},
		{`"a"`, nil, true},
		{`["a",]`, nil, true},
	}
	for _, tt := range tests {
		for _, a := range []*StringArena{nil, new(StringArena)} {
			got, err := NewScanner(tt.in).Strings(a)
			if (err != nil) != tt.err {
				t.Errorf("Strings(%q, arena %v) error = %v; want error %v", tt.in, a != nil, err, tt.err)
				continue
			}
			if tt.err {
				continue
			}
			if (got == nil) != (tt.want == nil) || !slices.Equal(got, tt.want) {
				t.Errorf("Strings(%q, arena %v) = %#v; want %#v", tt.in, a != nil, got, tt.want)
			}
		}
	}
}

// TestStringArena checks that the slices an arena hands out never
// overlap: appending to one or writing to its elements leaves the others
// as they were.
func TestStringArena(t *testing.T) {
	var a StringArena
	if got := a.Clone(nil); got != nil {
		t.Errorf("Clone(nil) = %#v; want nil", got)
	}
	if got := a.Clone([]string{}); got == nil || len(got) != 0 {
		t.Errorf("Clone([]string{}) = %#v; want an empty slice that is not nil", got)
	}
	var lists [][]string
	var want [][]string
	for i := range 40 {
		// Lengths 1 to 20: some fill an array, some need a new one, some
		// are longer than an array.
		var s []string
		for j := range i%20 + 1 {
			s = append(s, fmt.Sprint(i, ".", j))
		}
		got := a.Clone(s)
		if !slices.Equal(got, s) || cap(got) != len(got) {
			t.Fatalf("Clone(%q) = %q, cap %d; want a copy with cap = len", s, got, cap(got))
		}
		s[0] = "changed" // the clone is a copy
		lists = append(lists, got)
		want = append(want, slices.Clone(got))
	}
	for i := range lists {
		lists[i] = append(lists[i], "appended")
		lists[i][0] = "written"
		for j := range lists {
			if j != i && !slices.Equal(lists[j], want[j]) {
				t.Fatalf("after changing list %d, list %d = %q; want %q", i, j, lists[j], want[j])
			}
		}
		lists[i] = want[i]
	}
}

func TestStringArenaFields(t *testing.T) {
	for _, s := range []string{
		"", " ", "openid", "openid email profile", "  a\tb\nc  ", "a\u00a0b\u2003c\u0085d", "é à",
		strings.Repeat("s ", 40), "\xff \xfe",
	} {
		var a StringArena
		got, want := a.Fields(s), strings.Fields(s)
		if (got == nil) != (want == nil) || !slices.Equal(got, want) || cap(got) != len(got) {
			t.Errorf("Fields(%q) = %#v (cap %d); strings.Fields says %#v", s, got, cap(got), want)
		}
	}
}

// TestPlain checks the eight-byte test of rawString against the byte by
// byte one, for every byte value at every position and for random words.
func TestPlain(t *testing.T) {
	isPlain := func(c byte) bool { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\' }
	check := func(b []byte) {
		want := true
		for _, c := range b {
			want = want && isPlain(c)
		}
		if got := plain(string(b)); got != want {
			t.Fatalf("plain(%q) = %v; want %v", b, got, want)
		}
	}
	for _, fill := range []byte{'a', ' ', '~', '!', '#', '[', ']'} {
		for pos := range 8 {
			for c := range 256 {
				b := bytes.Repeat([]byte{fill}, 8)
				b[pos] = byte(c)
				check(b)
			}
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		var b [8]byte
		for i := range b {
			// Mostly plain bytes, so that both answers come up.
			if r.IntN(10) == 0 {
				b[i] = byte(r.Uint32())
			} else {
				b[i] = byte(0x20 + r.IntN(0x60))
			}
		}
		check(b[:])
	}
}
