package jose

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Scanner reads one JSON value in a single pass, without reflection. It is
// stricter than encoding/json: object keys match exactly (not case-
// insensitively), strings must be valid UTF-8 without lone surrogates, and
// nesting deeper than maxDepth is refused. Every byte is validated, so a
// value it accepts is valid JSON (RFC 8259).
//
// keygate decodes JOSE headers and claims with it: that decoding is most
// of the cost of a verification beside the signature itself (see
// ARCHITECTURE.md).
type Scanner struct {
	data  string
	pos   int
	depth int
}

const maxDepth = 64

// ErrSyntax reports input that is not valid JSON, or JSON keygate refuses.
var ErrSyntax = errors.New("invalid JSON")

// NewScanner returns a Scanner over data. Strings without escapes are
// returned as substrings of data, without copying.
func NewScanner(data string) *Scanner { return &Scanner{data: data} }

func (s *Scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", ErrSyntax, s.pos, fmt.Sprintf(format, args...))
}

func (s *Scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// End checks that nothing but whitespace follows the value.
func (s *Scanner) End() error {
	s.ws()
	if s.pos != len(s.data) {
		return s.errorf("data after the value")
	}
	return nil
}

// Null consumes a null literal if one is next and reports whether it did.
func (s *Scanner) Null() bool {
	s.ws()
	if strings.HasPrefix(s.data[s.pos:], "null") {
		s.pos += 4
		return true
	}
	return false
}

// Peek returns the first byte of the next value, or 0 at the end.
func (s *Scanner) Peek() byte {
	s.ws()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// Object reads an object, calling member for each key; member must
// consume the value.
func (s *Scanner) Object(member func(key string) error) error {
	s.ws()
	if s.pos >= len(s.data) || s.data[s.pos] != '{' {
		return s.errorf("want an object")
	}
	if s.depth++; s.depth > maxDepth {
		return s.errorf("nested too deep")
	}
	s.pos++
	s.ws()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		s.ws()
		key, err := s.rawString()
		if err != nil {
			return err
		}
		s.ws()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.errorf("want ':'")
		}
		s.pos++
		if err := member(key); err != nil {
			return err
		}
		s.ws()
		if s.pos >= len(s.data) {
			return s.errorf("unterminated object")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			s.depth--
			return nil
		default:
			return s.errorf("want ',' or '}'")
		}
	}
}

// Array reads an array, calling elem for each element; elem must consume
// the value.
func (s *Scanner) Array(elem func() error) error {
	s.ws()
	if s.pos >= len(s.data) || s.data[s.pos] != '[' {
		return s.errorf("want an array")
	}
	if s.depth++; s.depth > maxDepth {
		return s.errorf("nested too deep")
	}
	s.pos++
	s.ws()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		s.ws()
		if s.pos >= len(s.data) {
			return s.errorf("unterminated array")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case ']':
			s.pos++
			s.depth--
			return nil
		default:
			return s.errorf("want ',' or ']'")
		}
	}
}

// Strings reads an array of strings; null reads as nil, [] as an empty
// slice that is not nil. The result is carved from a (see [StringArena]);
// a nil a allocates it alone.
func (s *Scanner) Strings(a *StringArena) ([]string, error) {
	if s.Null() {
		return nil, nil
	}
	var buf [arenaChunk]string
	out := buf[:0]
	err := s.Array(func() error {
		v, err := s.String()
		out = append(out, v)
		return err
	})
	if err != nil {
		return nil, err
	}
	if a == nil {
		return append(make([]string, 0, len(out)), out...), nil
	}
	return a.Clone(out), nil
}

// A StringArena hands out string slices carved from shared backing
// arrays, so that a decoder that builds several short lists (a token's
// audiences, roles and scopes) allocates once for all of them, not once
// for each. Every slice it returns has its capacity cut to its length, so
// that no two overlap: appending to one copies it, and writing to an
// element of one cannot reach another. The zero value is ready to use. A
// StringArena is not safe for concurrent use, and must not be copied
// after first use: two copies would hand out the same array space.
type StringArena struct {
	free []string // the current array: its length is what is handed out
}

// arenaChunk is the length of a [StringArena]'s arrays, in strings. A
// longer slice gets an array of its own.
const arenaChunk = 16

// Clone returns a copy of s carved from a. Like [slices.Clone], it
// returns nil for nil and a non-nil empty slice for an empty one.
func (a *StringArena) Clone(s []string) []string {
	if s == nil {
		return nil
	}
	if len(s) == 0 {
		return []string{}
	}
	if len(s) > arenaChunk {
		return append(make([]string, 0, len(s)), s...)
	}
	if cap(a.free)-len(a.free) < len(s) {
		a.free = make([]string, 0, arenaChunk)
	}
	i := len(a.free)
	a.free = append(a.free, s...)
	return a.free[i:len(a.free):len(a.free)]
}

// Fields is [strings.Fields] with the result carved from a.
func (a *StringArena) Fields(s string) []string {
	var buf [arenaChunk]string
	f := buf[:0]
	for w := range strings.FieldsSeq(s) {
		f = append(f, w)
	}
	return a.Clone(f)
}

// String reads a string.
func (s *Scanner) String() (string, error) {
	s.ws()
	return s.rawString()
}

// rawString reads a string and returns its content: a substring of the
// input when it has no escapes, otherwise a decoded copy.
func (s *Scanner) rawString() (string, error) {
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return "", s.errorf("want a string")
	}
	start := s.pos + 1
	for i := start; i < len(s.data); {
		// Eight plain bytes at a time, the usual content of a token's
		// longer strings.
		if i+8 <= len(s.data) && plain(s.data[i:i+8]) {
			i += 8
			continue
		}
		// One of the next eight bytes needs a look: take them one by one.
		for stop := min(i+8, len(s.data)); i < stop; {
			c := s.data[i]
			switch {
			case c == '"':
				s.pos = i + 1
				return s.data[start:i], nil
			case c == '\\':
				s.pos = i
				return s.escapedString(start)
			case c < 0x20:
				s.pos = i
				return "", s.errorf("control character in string")
			case c < utf8.RuneSelf:
				i++
			default:
				r, n := utf8.DecodeRuneInString(s.data[i:])
				if r == utf8.RuneError && n == 1 {
					s.pos = i
					return "", s.errorf("invalid UTF-8 in string")
				}
				i += n
			}
		}
	}
	s.pos = len(s.data)
	return "", s.errorf("unterminated string")
}

// plain reports whether none of the 8 bytes of b ends a run of bytes
// that rawString takes as they are: none is '"', '\\', a control
// character or a byte outside ASCII. It tests the eight at once, as one
// 64-bit word.
func plain(b string) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	_ = b[7] // one bounds check, and the eight loads become one
	w := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
	// less(n) has a high bit set where a byte of w is below n, for n up
	// to 0x80 (and possibly above such a byte, which does not matter:
	// only zero or not counts).
	less := func(v, n uint64) uint64 { return (v - ones*n) &^ v & highs }
	return w&highs|less(w, 0x20)|less(w^(ones*'"'), 1)|less(w^(ones*'\\'), 1) == 0
}

func (s *Scanner) escapedString(start int) (string, error) {
	buf := []byte(s.data[start:s.pos])
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return string(buf), nil
		case c == '\\':
			if s.pos+1 >= len(s.data) {
				return "", s.errorf("unterminated escape")
			}
			e := s.data[s.pos+1]
			s.pos += 2
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, err := s.hex4()
				if err != nil {
					return "", err
				}
				if utf16.IsSurrogate(r) {
					if r >= 0xdc00 || s.pos+1 >= len(s.data) || s.data[s.pos] != '\\' || s.data[s.pos+1] != 'u' {
						return "", s.errorf("lone surrogate in string")
					}
					s.pos += 2
					lo, err := s.hex4()
					if err != nil {
						return "", err
					}
					if r = utf16.DecodeRune(r, lo); r == utf8.RuneError {
						return "", s.errorf("lone surrogate in string")
					}
				}
				buf = utf8.AppendRune(buf, r)
			default:
				return "", s.errorf("invalid escape")
			}
		case c < 0x20:
			return "", s.errorf("control character in string")
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			s.pos++
		default:
			r, n := utf8.DecodeRuneInString(s.data[s.pos:])
			if r == utf8.RuneError && n == 1 {
				return "", s.errorf("invalid UTF-8 in string")
			}
			buf = append(buf, s.data[s.pos:s.pos+n]...)
			s.pos += n
		}
	}
	return "", s.errorf("unterminated string")
}

func (s *Scanner) hex4() (rune, error) {
	if s.pos+4 > len(s.data) {
		return 0, s.errorf("short \\u escape")
	}
	var r rune
	for _, c := range s.data[s.pos : s.pos+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, s.errorf("bad \\u escape")
		}
	}
	s.pos += 4
	return r, nil
}

// Number reads a number.
func (s *Scanner) Number() (float64, error) {
	s.ws()
	start := s.pos
	if err := s.number(); err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(s.data[start:s.pos], 64)
	if err != nil {
		return 0, s.errorf("number out of range")
	}
	return f, nil
}

// number consumes a number per the RFC 8259 grammar.
func (s *Scanner) number() error {
	d := s.data
	if s.pos < len(d) && d[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(d) && d[s.pos] == '0':
		s.pos++
	case s.pos < len(d) && '1' <= d[s.pos] && d[s.pos] <= '9':
		for s.pos < len(d) && '0' <= d[s.pos] && d[s.pos] <= '9' {
			s.pos++
		}
	default:
		return s.errorf("want a number")
	}
	if s.pos < len(d) && d[s.pos] == '.' {
		s.pos++
		if !s.digits() {
			return s.errorf("want digits after '.'")
		}
	}
	if s.pos < len(d) && (d[s.pos] == 'e' || d[s.pos] == 'E') {
		s.pos++
		if s.pos < len(d) && (d[s.pos] == '+' || d[s.pos] == '-') {
			s.pos++
		}
		if !s.digits() {
			return s.errorf("want digits in exponent")
		}
	}
	return nil
}

func (s *Scanner) digits() bool {
	start := s.pos
	for s.pos < len(s.data) && '0' <= s.data[s.pos] && s.data[s.pos] <= '9' {
		s.pos++
	}
	return s.pos > start
}

// Skip consumes any value, validating it.
func (s *Scanner) Skip() error {
	switch c := s.Peek(); {
	case c == '{':
		return s.Object(func(string) error { return s.Skip() })
	case c == '[':
		return s.Array(s.Skip)
	case c == '"':
		_, err := s.rawString()
		return err
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if strings.HasPrefix(s.data[s.pos:], lit) {
			s.pos += len(lit)
			return nil
		}
	}
	return s.errorf("want a value")
}
