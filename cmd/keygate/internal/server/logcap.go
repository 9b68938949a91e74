package server

import "github.com/keygate/keygate/internal/clip"

// clip cuts s, a value the client chose (method, path, header name, or
// an error text that quotes the token's kid), to clip.Log bytes with a
// note of its full length. Every such value the server logs goes through
// it, so one request adds a bounded amount to the log.
func clipValue(s string) string { return clip.String(s, clip.Log) }
