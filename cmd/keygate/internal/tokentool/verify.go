package tokentool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/cmd/keygate/internal/config"
	"github.com/keygate/keygate/jwks"
)

// VerifyOptions configure [Verify]: either Config, or the fields after it.
type VerifyOptions struct {
	// Config, when set, is a keygate serve configuration: the token is
	// checked with exactly the key source and verifier serve builds from
	// it (config.SourceConfig, config.VerifierConfig), and the fields
	// below are ignored but for Now and HTTPClient.
	Config *config.Config

	// Issuer is the exact iss the token must carry. Required.
	Issuer string
	// Audiences are the accepted aud values. Required, as in keygate
	// serve, unless InsecureSkipAudienceCheck is set.
	Audiences []string
	// InsecureSkipAudienceCheck accepts any audience, as the config key of
	// the same name does.
	InsecureSkipAudienceCheck bool
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

// ErrNoAudience is returned when neither Audiences nor
// InsecureSkipAudienceCheck is set: keygate serve requires one of them.
var ErrNoAudience = errors.New("--audience is required, as keygate serve requires audiences; --insecure-skip-audience-check accepts any")

// ErrBearerPrefix is returned for a token given with its "Bearer " prefix:
// keygate serve would refuse such a token, so the tool does not strip it.
var ErrBearerPrefix = errors.New(`give the token without the "Bearer " prefix of the Authorization header`)

// Verify checks raw with the library's [keygate.Verifier.Explain], the
// same checks keygate serve runs, and writes one line per check, then the
// verdict. It reports whether the token is valid. Its error is for
// problems other than the token: missing options, keys that cannot be
// fetched, a "Bearer " prefix.
func Verify(ctx context.Context, w io.Writer, raw string, o VerifyOptions) (bool, error) {
	raw = strings.TrimSpace(raw)
	if scheme, _, ok := strings.Cut(raw, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return false, ErrBearerPrefix
	}
	var sc jwks.Config
	var vc keygate.Config
	if c := o.Config; c != nil {
		sc = c.SourceConfig(o.HTTPClient, nil, nil)
		vc = c.VerifierConfig(nil, nil)
	} else {
		if o.Issuer == "" {
			return false, errors.New("--issuer is required")
		}
		if len(o.Audiences) == 0 && !o.InsecureSkipAudienceCheck {
			return false, ErrNoAudience
		}
		sc = jwks.Config{Issuer: o.Issuer, URL: o.JWKSURL, InsecureAllowHTTP: o.InsecureAllowHTTP, HTTPClient: o.HTTPClient}
		vc = keygate.Config{Issuer: o.Issuer, Audiences: o.Audiences, InsecureSkipAudienceCheck: o.InsecureSkipAudienceCheck,
			Leeway: o.Leeway, AllowUntypedTokens: o.AllowUntypedTokens}
	}
	sc.Now = o.Now
	src, err := jwks.NewSource(sc)
	if err != nil {
		return false, err
	}
	defer src.Close()
	if err := src.Refresh(ctx); err != nil {
		return false, fmt.Errorf("cannot fetch the keys: %w", err)
	}
	vc.Keys, vc.Now, vc.CacheSize = src, o.Now, -1
	v, err := keygate.NewVerifier(vc)
	if err != nil {
		return false, err
	}
	x := v.Explain(ctx, raw)

	fmt.Fprintf(w, "checks (issuer %s, keys from %s):\n", vc.Issuer, src.Status().URL)
	for _, c := range x.Checks {
		if c.Err != nil {
			fmt.Fprintf(w, "  %-4s  %-10s %s\n", "FAIL", c.Name, detail(c.Err))
		} else {
			fmt.Fprintf(w, "  %-4s  %-10s %s\n", "ok", c.Name, c.Detail)
		}
	}
	fmt.Fprintln(w)
	if x.Err != nil {
		var ke *keygate.Error
		class := "rejected"
		if errors.As(x.Err, &ke) {
			class = ke.Description()
		}
		verdict := "INVALID"
		if errors.Is(x.Err, keygate.ErrKeysUnavailable) {
			verdict = "CANNOT CHECK"
		}
		fmt.Fprintf(w, "verdict: %s (%s); the checks after %s did not run\n", verdict, class, x.Checks[len(x.Checks)-1].Name)
		if errors.Is(x.Err, keygate.ErrUnknownKey) {
			fmt.Fprintf(w, "  kids in the key set: %s\n", strings.Join(src.Status().KeyIDs, ", "))
		}
		return false, nil
	}
	p := x.Principal
	fmt.Fprintln(w, "verdict: VALID")
	fmt.Fprintf(w, "  subject   %s\n", p.Subject)
	if p.Username != "" {
		fmt.Fprintf(w, "  username  %s\n", p.Username)
	}
	fmt.Fprintf(w, "  client    %s\n", p.Client)
	fmt.Fprintf(w, "  roles     %s\n", strings.Join(p.Roles, ", "))
	fmt.Fprintf(w, "  scopes    %s\n", strings.Join(p.Scopes, " "))
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	fmt.Fprintf(w, "  expires   %s (%s)\n", p.ExpiresAt.UTC().Format(time.RFC3339), relative(p.ExpiresAt, now()))
	return true, nil
}

// detail is what a failed check prints: the error without its class
// prefix, which the verdict line repeats.
func detail(err error) string {
	return strings.TrimPrefix(err.Error(), "keygate: ")
}
