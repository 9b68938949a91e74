package server

import (
	"strconv"
	"unicode/utf8"
)

// maxLogValue is how many bytes of an attacker-controlled value the log
// keeps: see [clip].
const maxLogValue = 256

// clip cuts s, a value the client chose (method, path, header name, or
// an error text that quotes the token's kid), to at most maxLogValue
// bytes, at a rune boundary, and marks the cut with its full length:
// "…(11042 bytes)". Every such value the server logs goes through clip,
// so one request adds a bounded amount to the log.
func clip(s string) string {
	if len(s) <= maxLogValue {
		return s
	}
	i := maxLogValue
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}
