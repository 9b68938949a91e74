// Package tokentool holds the token commands of the keygate binary:
// decode a token without checking it, verify it check by check, and get
// one from a local dev issuer.
package tokentool

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keygate/keygate/cmd/keygate/internal/config"
)

// Decoded is a compact JWS split and decoded, not verified.
type Decoded struct {
	// Header and Claims are the decoded JSON of the first two parts.
	Header, Claims json.RawMessage
	// Signature is the decoded third part.
	Signature []byte
}

// Decode splits raw and decodes its header and claims. It checks nothing
// but the shape.
func Decode(raw string) (*Decoded, error) {
	raw = strings.TrimSpace(raw)
	raw = strings.TrimPrefix(raw, "Bearer ")
	parts := strings.Split(raw, ".")
	switch len(parts) {
	case 3:
	case 5:
		return nil, errors.New("the token has five parts: it is an encrypted JWE, which cannot be decoded without the key")
	default:
		return nil, fmt.Errorf("the token has %d dot-separated parts; a JWT has three: header.claims.signature", len(parts))
	}
	var d Decoded
	for i, name := range []string{"header", "claims", "signature"} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return nil, fmt.Errorf("the %s is not base64url without padding: %v", name, err)
		}
		switch i {
		case 0, 1:
			if !json.Valid(b) || len(bytes.TrimSpace(b)) == 0 || bytes.TrimSpace(b)[0] != '{' {
				return nil, fmt.Errorf("the %s is not a JSON object", name)
			}
			if i == 0 {
				d.Header = b
			} else {
				d.Claims = b
			}
		case 2:
			d.Signature = b
		}
	}
	return &d, nil
}

// Inspect writes raw's header and claims as indented JSON, clearly marked
// unverified, and its times in words relative to now.
func Inspect(w io.Writer, raw string, now time.Time) error {
	d, err := Decode(raw)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "UNVERIFIED: decoded only; neither the signature nor any claim was checked.")
	fmt.Fprintln(w, "Use `keygate token verify` to check it.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "header:")
	writeIndented(w, d.Header)
	fmt.Fprintln(w, "claims:")
	writeIndented(w, d.Claims)
	var c map[string]any
	dec := json.NewDecoder(bytes.NewReader(d.Claims))
	dec.UseNumber()
	if err := dec.Decode(&c); err == nil {
		var lines []string
		for _, name := range []string{"exp", "iat", "nbf", "auth_time"} {
			if t, ok := numericDate(c[name]); ok {
				lines = append(lines, fmt.Sprintf("  %-9s %s  (%s)", name, t.UTC().Format(time.RFC3339), relative(t, now)))
			}
		}
		if len(lines) > 0 {
			fmt.Fprintln(w, "times:")
			fmt.Fprintln(w, strings.Join(lines, "\n"))
		}
	}
	fmt.Fprintf(w, "signature: %d bytes\n", len(d.Signature))
	return nil
}

func writeIndented(w io.Writer, b []byte) {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		out.Reset()
		out.Write(b)
	}
	out.WriteByte('\n')
	w.Write(out.Bytes())
}

// numericDate reads a JWT NumericDate decoded with UseNumber.
func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || f < 0 || f > 1e11 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// relative says when t is from now, in words.
func relative(t, now time.Time) string {
	d := t.Sub(now).Round(time.Second)
	switch {
	case d == 0:
		return "now"
	case d > 0:
		return "in " + d.String()
	}
	return (-d).String() + " ago"
}

// MintOptions configure [Mint].
type MintOptions struct {
	// Issuer is the dev issuer, such as http://127.0.0.1:8180/realms/dev.
	// Its host must be loopback.
	Issuer string
	// User and Password ask for the password grant; without User, the
	// client credentials grant is used.
	User, Password string
	// Client and Secret are the client's credentials; Secret may be empty
	// for a public client with the password grant.
	Client, Secret string
	// Scope is the requested scope, such as "openid".
	Scope string
	// HTTPClient makes the request. Nil means a client with a 10s timeout.
	HTTPClient *http.Client
}

// TokenResponse is what a token endpoint answers.
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	IDToken     string `json:"id_token,omitempty"`
	ExpiresIn   int    `json:"expires_in"`
	TokenType   string `json:"token_type"`
	Scope       string `json:"scope"`
	// Raw is the whole answer.
	Raw json.RawMessage `json:"-"`
}

// Mint gets a token from the token endpoint of a local dev issuer (keygate
// dev, or a Keycloak on this machine). It refuses issuers that are not on
// a loopback address: it sends passwords, and is a development tool.
func Mint(ctx context.Context, o MintOptions) (*TokenResponse, error) {
	u, err := url.Parse(o.Issuer)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("--issuer %q is not an issuer URL such as http://127.0.0.1:8180/realms/dev", o.Issuer)
	}
	if !config.LoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("--issuer %q is not on this machine; token mint only talks to a local dev issuer (127.0.0.1, ::1 or localhost)", o.Issuer)
	}
	form := url.Values{}
	switch {
	case o.User != "":
		form.Set("grant_type", "password")
		form.Set("username", o.User)
		form.Set("password", o.Password)
	case o.Secret != "":
		form.Set("grant_type", "client_credentials")
	default:
		return nil, errors.New("give --user and --password for the password grant, or --client and --secret for client credentials")
	}
	if o.Client == "" {
		return nil, errors.New("--client is required")
	}
	form.Set("client_id", o.Client)
	if o.Secret != "" {
		form.Set("client_secret", o.Secret)
	}
	if o.Scope != "" {
		form.Set("scope", o.Scope)
	}
	endpoint := strings.TrimSuffix(o.Issuer, "/") + "/protocol/openid-connect/token"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	client := o.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("token endpoint: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("token endpoint: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var oe struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(body, &oe) == nil && oe.Error != "" {
			return nil, fmt.Errorf("token endpoint: HTTP %d: %s: %s", resp.StatusCode, oe.Error, oe.Description)
		}
		return nil, fmt.Errorf("token endpoint %s: HTTP %d", endpoint, resp.StatusCode)
	}
	var tr TokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return nil, fmt.Errorf("token endpoint: the answer holds no access_token")
	}
	tr.Raw = body
	return &tr, nil
}
