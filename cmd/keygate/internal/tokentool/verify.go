package tokentool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/internal/jose"
	"github.com/keygate/keygate/jwks"
)

// VerifyOptions configure [Verify].
type VerifyOptions struct {
	// Issuer is the exact iss the token must carry. Required.
	Issuer string
	// Audiences are the accepted aud values; empty means the audience
	// check is skipped (and reported as such).
	Audiences []string
	// JWKSURL, when set, is fetched instead of discovering the keys.
	JWKSURL string
	// InsecureAllowHTTP allows plain http for hosts other than loopback.
	InsecureAllowHTTP bool
	// AllowUntypedTokens accepts tokens with no type.
	AllowUntypedTokens bool
	// Leeway is the clock skew allowed. Zero means keygate.DefaultLeeway.
	Leeway time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// HTTPClient fetches keys. Nil means the jwks default.
	HTTPClient *http.Client
}

// Verify checks raw as keygate serve would and writes one line per check:
// shape, header and algorithm, token type, times, issuer, audience, key
// and signature, each passed, failed (and why) or not reached. The
// verdict is the library's Verify: Verify reports whether it accepted the
// token. Its error is for problems other than the token, such as keys
// that cannot be fetched.
func Verify(ctx context.Context, w io.Writer, raw string, o VerifyOptions) (bool, error) {
	raw = strings.TrimPrefix(strings.TrimSpace(raw), "Bearer ")
	if o.Issuer == "" {
		return false, errors.New("--issuer is required")
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	leeway := o.Leeway
	if leeway == 0 {
		leeway = keygate.DefaultLeeway
	}
	src, err := jwks.NewSource(jwks.Config{Issuer: o.Issuer, URL: o.JWKSURL, InsecureAllowHTTP: o.InsecureAllowHTTP, HTTPClient: o.HTTPClient, Now: o.Now})
	if err != nil {
		return false, err
	}
	defer src.Close()

	r := report{w: w}
	fmt.Fprintf(w, "checks (issuer %s):\n", o.Issuer)
	jws, splitErr := jose.Split(raw)
	if splitErr != nil {
		r.fail("shape", splitErr.Error())
	} else {
		r.pass("shape", "three base64url parts")
	}
	var h jose.Header
	var claims map[string]any
	if splitErr == nil {
		h, err = jose.ParseHeader(jws.Header)
		switch {
		case err != nil:
			r.fail("header", err.Error())
		case h.Crit:
			r.fail("header", "crit extensions keygate does not understand")
		case !jose.Supported(h.Alg):
			r.fail("header", fmt.Sprintf("alg %q is not accepted; accepted: %s", h.Alg, strings.Join(jose.Algorithms(), ", ")))
		default:
			r.pass("header", fmt.Sprintf("alg %s, kid %q", h.Alg, h.Kid))
		}
		dec := json.NewDecoder(bytes.NewReader(jws.Payload))
		dec.UseNumber()
		if err := dec.Decode(&claims); err != nil {
			r.fail("claims", "not a JSON object: "+err.Error())
		}
	}
	if claims != nil {
		r.checkType(h, claims, o.AllowUntypedTokens)
		r.checkTimes(claims, now(), leeway)
		if iss, _ := claims["iss"].(string); iss == o.Issuer {
			r.pass("iss", iss)
		} else {
			r.fail("iss", fmt.Sprintf("%q, want %q", iss, o.Issuer))
		}
		aud := stringList(claims["aud"])
		switch {
		case len(o.Audiences) == 0:
			r.skip("aud", fmt.Sprintf("%q (no --audience given: check skipped)", aud))
		case slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(o.Audiences, a) }):
			r.pass("aud", fmt.Sprintf("%q holds one of %q", aud, o.Audiences))
		default:
			r.fail("aud", fmt.Sprintf("%q holds none of %q", aud, o.Audiences))
		}
	}

	var key *jwks.Key
	if splitErr == nil {
		if ferr := src.Refresh(ctx); ferr != nil {
			r.fail("key", "cannot fetch the keys: "+ferr.Error())
		} else if key, err = src.Key(ctx, h.Kid); err != nil {
			r.fail("key", fmt.Sprintf("kid %q is not in the key set at %s (kids: %s)", h.Kid, src.Status().URL, strings.Join(src.Status().KeyIDs, ", ")))
		} else {
			r.pass("key", fmt.Sprintf("kid %q, %s key from %s", h.Kid, key.Type, src.Status().URL))
		}
	}
	switch {
	case splitErr != nil:
		r.skip("key", "not looked up: the token has no usable header")
		r.skip("signature", "not checked")
	case key == nil:
		r.skip("signature", "not checked: no key")
	case !jose.KeyFits(h.Alg, key.Public) || (key.Algorithm != "" && key.Algorithm != h.Alg):
		r.fail("signature", fmt.Sprintf("alg %q does not fit the %s key (key alg %q)", h.Alg, key.Type, key.Algorithm))
	case jose.Verify(h.Alg, key.Public, jws.SigningInput, jws.Signature) != nil:
		r.fail("signature", "does not verify with the key")
	default:
		r.pass("signature", "verifies with the key")
	}

	// The verdict is the library's.
	v, err := keygate.NewVerifier(keygate.Config{
		Issuer: o.Issuer, Audiences: o.Audiences, InsecureSkipAudienceCheck: len(o.Audiences) == 0,
		Keys: src, Leeway: o.Leeway, AllowUntypedTokens: o.AllowUntypedTokens, Now: o.Now, CacheSize: -1,
	})
	if err != nil {
		return false, err
	}
	p, err := v.Verify(ctx, raw)
	fmt.Fprintln(w)
	if err != nil {
		var ke *keygate.Error
		class := "rejected"
		if errors.As(err, &ke) {
			class = ke.Description()
		}
		if errors.Is(err, keygate.ErrKeysUnavailable) {
			fmt.Fprintf(w, "verdict: CANNOT CHECK (%s)\n  %v\n", class, err)
		} else {
			fmt.Fprintf(w, "verdict: INVALID (%s)\n  %v\n", class, err)
		}
		return false, nil
	}
	fmt.Fprintln(w, "verdict: VALID")
	fmt.Fprintf(w, "  subject   %s\n", p.Subject)
	if p.Username != "" {
		fmt.Fprintf(w, "  username  %s\n", p.Username)
	}
	fmt.Fprintf(w, "  client    %s\n", p.Client)
	fmt.Fprintf(w, "  roles     %s\n", strings.Join(p.Roles, ", "))
	fmt.Fprintf(w, "  scopes    %s\n", strings.Join(p.Scopes, " "))
	fmt.Fprintf(w, "  expires   %s (%s)\n", p.ExpiresAt.UTC().Format(time.RFC3339), relative(p.ExpiresAt, now()))
	return true, nil
}

type report struct{ w io.Writer }

func (r report) line(mark, check, msg string) {
	fmt.Fprintf(r.w, "  %-4s  %-9s %s\n", mark, check, msg)
}
func (r report) pass(check, msg string) { r.line("ok", check, msg) }
func (r report) fail(check, msg string) { r.line("FAIL", check, msg) }
func (r report) skip(check, msg string) { r.line("-", check, msg) }

func (r report) checkType(h jose.Header, c map[string]any, allowUntyped bool) {
	typ, _ := c["typ"].(string)
	ht := strings.ToLower(h.Typ)
	switch {
	case ht == "at+jwt" || ht == "application/at+jwt":
		if typ == "" || typ == "Bearer" {
			r.pass("type", "header typ "+h.Typ+" (RFC 9068 access token)")
			return
		}
	case ht != "" && ht != "jwt":
		r.fail("type", fmt.Sprintf("header typ %q is not an access token type", h.Typ))
		return
	}
	switch typ {
	case "Bearer":
		r.pass("type", `typ "Bearer" (Keycloak access token)`)
	case "":
		if allowUntyped {
			r.pass("type", "no type (allowed by --allow-untyped)")
		} else {
			r.fail("type", `no type: want typ "Bearer" or header typ "at+jwt"`)
		}
	case "ID":
		r.fail("type", "an ID token is not an access token")
	case "Refresh", "Offline":
		r.fail("type", "a refresh token is not an access token")
	default:
		r.fail("type", fmt.Sprintf("typ %q is not an access token type", typ))
	}
}

func (r report) checkTimes(c map[string]any, now time.Time, leeway time.Duration) {
	exp, ok := numericDate(c["exp"])
	switch {
	case c["exp"] == nil:
		r.fail("exp", "missing")
	case !ok:
		r.fail("exp", "not a NumericDate")
	case !now.Before(exp.Add(leeway)):
		r.fail("exp", fmt.Sprintf("expired at %s (%s, leeway %v)", exp.UTC().Format(time.RFC3339), relative(exp, now), leeway))
	default:
		r.pass("exp", fmt.Sprintf("%s (%s)", exp.UTC().Format(time.RFC3339), relative(exp, now)))
	}
	for _, name := range []string{"nbf", "iat"} {
		if c[name] == nil {
			continue
		}
		t, ok := numericDate(c[name])
		switch {
		case !ok:
			r.fail(name, "not a NumericDate")
		case now.Add(leeway).Before(t):
			r.fail(name, fmt.Sprintf("%s is in the future (%s, leeway %v)", t.UTC().Format(time.RFC3339), relative(t, now), leeway))
		default:
			r.pass(name, fmt.Sprintf("%s (%s)", t.UTC().Format(time.RFC3339), relative(t, now)))
		}
	}
}

func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
