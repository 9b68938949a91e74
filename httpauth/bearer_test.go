package httpauth_test

import (
	"errors"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/httpauth"
)

func TestParseAuthorization(t *testing.T) {
	for _, c := range []struct {
		in, tok string
		bad     bool
	}{
		{in: "Bearer abc.DEF-_~+/==", tok: "abc.DEF-_~+/=="},
		{in: "bearer abc", tok: "abc"},
		{in: "BEARER   abc", tok: "abc"},
		{in: "Basic YTpi"},
		{in: "DPoP abc"},
		{in: ""},
		{in: "Bearer", bad: true},
		{in: "Bearer ", bad: true},
		{in: "Bearer a b", bad: true},
		{in: "Bearer a=b", bad: true},
		{in: "Bearer =abc", bad: true},
		{in: "Bearer abc\x00", bad: true},
		{in: "Bearer\tabc", bad: false}, // scheme "Bearer\tabc" is another scheme
	} {
		tok, err := httpauth.ParseAuthorization(c.in)
		if tok != c.tok || (err != nil) != c.bad {
			t.Errorf("ParseAuthorization(%q) = %q, %v; want %q, bad=%v", c.in, tok, err, c.tok, c.bad)
		}
		if err != nil && !errors.Is(err, keygate.ErrMalformed) {
			t.Errorf("ParseAuthorization(%q): error %v does not match keygate.ErrMalformed", c.in, err)
		}
	}
}
