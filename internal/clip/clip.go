// Package clip cuts values that a client or a token chose before they go
// into a log line or an error message, so that one request adds a bounded
// number of bytes wherever it is echoed. keygate's packages all cut with
// it: one rule, one marker.
package clip

import (
	"strconv"
	"unicode/utf8"
)

// Log is how many bytes of one value a log line keeps.
const Log = 256

// Quoted is how many bytes of one value taken from a token an error
// message quotes.
const Quoted = 64

// String returns s cut to at most n bytes at a UTF-8 boundary, followed by
// a note of its full length such as "…(11264 bytes)"; s itself when it is
// not longer than n.
func String(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// Quote returns s in Go quotes (strconv.Quote), cut as String cuts it to
// n bytes, the note outside the quotes.
func Quote(s string, n int) string {
	if len(s) <= n {
		return strconv.Quote(s)
	}
	cut := String(s, n)
	i := len(cut) - len("…("+strconv.Itoa(len(s))+" bytes)")
	return strconv.Quote(cut[:i]) + cut[i:]
}
