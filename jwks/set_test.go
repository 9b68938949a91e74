package jwks

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/jose"
)

func ecKeyJSON(t *testing.T, kid string) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e := base64.RawURLEncoding
	return fmt.Sprintf(`{"kty":"EC","kid":%q,"use":"sig","alg":"ES256","crv":"P-256","x":%q,"y":%q}`,
		kid, e.EncodeToString(k.X.FillBytes(make([]byte, 32))), e.EncodeToString(k.Y.FillBytes(make([]byte, 32))))
}

// Parse is the exported form for keys configured out of band.
func TestParseExported(t *testing.T) {
	s, err := Parse([]byte(`{"keys":[` + ecKeyJSON(t, "a") + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	if k, err := s.Key(context.Background(), "a"); err != nil || k.Algorithm != "ES256" {
		t.Errorf("Key(a) = %v, %v", k, err)
	}
}

func TestParse(t *testing.T) {
	a, b, c := ecKeyJSON(t, "a"), ecKeyJSON(t, "b"), ecKeyJSON(t, "c")
	enc := `{"kty":"RSA","kid":"enc","use":"enc","alg":"RSA-OAEP","n":"AQAB","e":"AQAB"}`
	weak := `{"kty":"RSA","kid":"weak","n":"` + strings.Repeat("Q", 170) + `","e":"AQAB"}`
	tests := []struct {
		name     string
		doc      string
		maxKeys  int
		wantKids []string
		skipped  []string // kid: reason substring
		wantErr  string
	}{
		{"two keys", `{"keys":[` + a + `,` + b + `]}`, 0, []string{"a", "b"}, nil, ""},
		{"enc key reported as not for signatures", `{"keys":[` + a + `,` + enc + `]}`, 0, []string{"a"}, []string{`enc: use "enc"`}, ""},
		{"weak and unknown keys reported", `{"keys":[` + weak + `,{"kty":"oct","kid":"sym","k":"AAAA"},` + a + `]}`, 0,
			[]string{"a"}, []string{"weak: bits", "sym: unsupported kty"}, ""},
		{"duplicate kid", `{"keys":[` + a + `,` + a + `]}`, 0, []string{"a"}, []string{"a: duplicate kid"}, ""},
		{"not an object", `{"keys":[1,` + b + `]}`, 0, []string{"b"}, []string{": not a JSON object"}, ""},
		{"over max keys", `{"keys":[` + a + `,` + b + `,` + c + `]}`, 2, []string{"a", "b"}, []string{"c: over the limit"}, ""},
		{"empty set", `{"keys":[]}`, 0, nil, nil, "no usable signature key"},
		{"only enc", `{"keys":[` + enc + `]}`, 0, nil, nil, "no usable signature key"},
		{"no keys member", `{}`, 0, nil, nil, `no "keys" array`},
		{"keys not array", `{"keys":{}}`, 0, nil, nil, "not a JSON key set"},
		{"garbage", `<html>`, 0, nil, nil, "not a JSON key set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parse([]byte(tt.doc), nil, tt.maxKeys)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse() error = %v; want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse() = %v", err)
			}
			if got := keyIDs(s); fmt.Sprint(got) != fmt.Sprint(tt.wantKids) {
				t.Errorf("kids = %v; want %v", got, tt.wantKids)
			}
			if len(s.Skipped()) != len(tt.skipped) {
				t.Fatalf("Skipped() = %+v; want %d entries", s.Skipped(), len(tt.skipped))
			}
			for i, want := range tt.skipped {
				kid, reason, _ := strings.Cut(want, ": ")
				got := s.Skipped()[i]
				if got.ID != kid || !strings.Contains(got.Reason, reason) {
					t.Errorf("Skipped()[%d] = %+v; want kid %q, reason containing %q", i, got, kid, reason)
				}
				if enc := kid == "enc"; got.NotForSignatures != enc {
					t.Errorf("Skipped()[%d].NotForSignatures = %v; want %v", i, got.NotForSignatures, enc)
				}
			}
		})
	}
}

func TestParseReusesUnchangedKeys(t *testing.T) {
	a, b := ecKeyJSON(t, "a"), ecKeyJSON(t, "b")
	first, err := parse([]byte(`{"keys":[`+a+`,`+b+`]}`), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	bNew := ecKeyJSON(t, "b") // same kid, new material
	second, err := parse([]byte(`{"keys":[`+a+`,`+bNew+`]}`), first, 0)
	if err != nil {
		t.Fatal(err)
	}
	ka1, _ := first.Lookup("a")
	ka2, _ := second.Lookup("a")
	kb1, _ := first.Lookup("b")
	kb2, _ := second.Lookup("b")
	if ka1 != ka2 {
		t.Error("unchanged key a was not reused")
	}
	if kb1 == kb2 {
		t.Error("key b with new material was reused")
	}
	retireMissing(first, second)
	if ka1.Retired() || !kb1.Retired() || kb2.Retired() {
		t.Errorf("retired: a %v, old b %v, new b %v; want false, true, false", ka1.Retired(), kb1.Retired(), kb2.Retired())
	}
}

func TestLookupWithoutKid(t *testing.T) {
	one, _ := parse([]byte(`{"keys":[`+ecKeyJSON(t, "a")+`]}`), nil, 0)
	two, _ := parse([]byte(`{"keys":[`+ecKeyJSON(t, "a")+`,`+ecKeyJSON(t, "b")+`]}`), nil, 0)
	if _, ok := one.Lookup(""); !ok {
		t.Error("Lookup(\"\") in a one-key set found nothing")
	}
	if _, ok := two.Lookup(""); ok {
		t.Error("Lookup(\"\") in a two-key set found a key; want none (ambiguous)")
	}
	if _, err := two.Key(context.Background(), "zz"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Set.Key(unknown) = %v; want ErrUnknownKey", err)
	}
}

// TestKeysArePrepared checks that an RSA key is prepared for verification
// when it enters a set (Parse, StaticSet), off the request path, and that
// a Key literal used directly prepares itself on first use.
func TestKeysArePrepared(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	doc := fmt.Sprintf(`{"keys":[{"kty":"RSA","kid":"r","alg":"RS256","n":%q,"e":"AQAB"}]}`, b64(priv.N.Bytes()))
	set, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	k, _ := set.Lookup("r")
	if !jose.PreparedFor(k, k.Public) {
		t.Errorf("Parse: the RSA key is not prepared")
	}

	lit := &Key{ID: "s", Type: "RSA", Public: &priv.PublicKey}
	if jose.PreparedFor(lit, lit.Public) {
		t.Fatalf("a new Key literal is prepared already")
	}
	StaticSet(lit)
	if !jose.PreparedFor(lit, lit.Public) {
		t.Errorf("StaticSet: the RSA key is not prepared")
	}

	direct := &Key{ID: "d", Type: "RSA", Public: &priv.PublicKey}
	digest := sha256.Sum256([]byte("a.b"))
	sig, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := jose.VerifyPrepared("RS256", direct, direct.Public, "a.b", sig); err != nil {
		t.Fatalf("VerifyPrepared with a Key literal = %v", err)
	}
	if !jose.PreparedFor(direct, direct.Public) {
		t.Errorf("a Key literal is not prepared after its first use")
	}
}
