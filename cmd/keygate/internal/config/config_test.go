package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/cmd/keygate/internal/config"
)

func env(vars map[string]string) config.LookupEnv {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// valid is a minimal valid file; tests append to it or replace lines.
const valid = `upstream: http://127.0.0.1:3000
issuer: https://sso.example.com/realms/r
audiences: [api]
`

func TestExpand(t *testing.T) {
	vars := env(map[string]string{"HOST": "sso", "EMPTY": "", "N": "3"})
	tests := []struct {
		in, want, err string
	}{
		{in: "plain", want: "plain"},
		{in: "https://${HOST}/x", want: "https://sso/x"},
		{in: "${HOST}${N}", want: "sso3"},
		{in: "${MISSING:-fallback}", want: "fallback"},
		{in: "${EMPTY:-fallback}", want: "fallback"},
		{in: "${EMPTY}", want: ""},
		{in: "${HOST:-x}", want: "sso"},
		{in: "${MISSING:-}", want: ""},
		{in: "$${HOST}", want: "${HOST}"},
		{in: "cost: $5 ${N}", want: "cost: $5 3"},
		{in: "${MISSING}", err: "environment variable MISSING is not set; set it, or give a default with ${MISSING:-value}"},
		{in: "${HOST", err: "without its closing }"},
		{in: "${1BAD}", err: "does not name an environment variable"},
		{in: "${}", err: "does not name an environment variable"},
	}
	for _, tt := range tests {
		got, err := config.Expand(tt.in, vars)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("Expand(%q) error = %v; want %q", tt.in, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("Expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestLoad(t *testing.T) {
	vars := env(map[string]string{
		"ISSUER": "https://sso.example.com/realms/r", "CACHE": "100", "ON": "true",
		"EVIL": "x\nupstream: http://evil", "AUD": "api", "LEEWAY": "30s",
	})
	tests := []struct {
		name  string
		yaml  string
		check func(t *testing.T, c config.Config)
		err   string // substring of the error, with its line: "file.yaml:3: ..."
	}{
		{
			name: "env substitution",
			yaml: "upstream: http://127.0.0.1:3000\nissuer: ${ISSUER}\naudiences: [\"${AUD}\", \"${OTHER:-web}\"]\n" +
				"verify:\n  cache_size: ${CACHE}\n  allow_untyped_tokens: ${ON}\n  leeway: ${LEEWAY}\n",
			check: func(t *testing.T, c config.Config) {
				if c.Issuer != "https://sso.example.com/realms/r" || c.Verify.CacheSize != 100 || !c.Verify.AllowUntypedTokens ||
					c.Verify.Leeway != 30*time.Second || strings.Join(c.Audiences, ",") != "api,web" {
					t.Errorf("config = %+v", c)
				}
			},
		},
		{
			name: "a value cannot add structure",
			yaml: valid + "realm: ${EVIL}\n",
			check: func(t *testing.T, c config.Config) {
				if c.Realm != "x\nupstream: http://evil" || c.Upstream != "http://127.0.0.1:3000" {
					t.Errorf("realm %q, upstream %q", c.Realm, c.Upstream)
				}
			},
		},
		{
			name: "comments and keys are not substituted",
			yaml: "# uses ${NOT_SET}\n" + valid,
		},
		{
			name: "rules",
			yaml: valid + "access:\n  default: authenticated\n  rules:\n    - path: /public/**\n      require: permit_all\n",
			check: func(t *testing.T, c config.Config) {
				if c.Access == nil || len(c.Access.Rules) != 1 {
					t.Errorf("rules = %+v", c.Access)
				}
			},
		},
		{name: "unset variable", yaml: valid + "realm: ${NOPE}\n", err: "f.yaml:4: environment variable NOPE is not set"},
		{name: "unknown key", yaml: valid + "audience: [x]\n", err: `f.yaml:4: unknown key "audience" at the top level; did you mean "audiences"?`},
		{name: "unknown nested key", yaml: valid + "keys:\n  max_stal: 1h\n", err: `f.yaml:5: unknown key "max_stal" under keys; did you mean "max_stale"?`},
		{name: "unknown key without a guess", yaml: valid + "frobnicate: 1\n", err: `f.yaml:4: unknown key "frobnicate" at the top level; the keys here are listen,`},
		{name: "unknown key in rules", yaml: valid + "access:\n  - path: /x\n    require: {roles: admin}\n", err: `f.yaml:6: unknown requirement "roles"`},
		{name: "rules at the top level", yaml: valid + "rules:\n  - path: /x\n    require: permit_all\n", err: `f.yaml:4: "rules" belongs under access: (the document authz.ParseYAML reads)`},
		{name: "default at the top level", yaml: valid + "default: authenticated\n", err: `f.yaml:4: "default" belongs under access:`},
		{name: "duration as a number", yaml: valid + "verify:\n  leeway: 60\n", err: `f.yaml:5: cannot unmarshal !!int ` + "`60`" + ` into time.Duration; write durations as Go duration strings`},
		{name: "bool typo", yaml: valid + "forward_token: yes please\n", err: "f.yaml:4: cannot unmarshal !!str `yes please` into bool; write true or false"},
		{name: "syntax error", yaml: valid + "audiences: [a\n", err: "f.yaml:"},
		{name: "duplicate key", yaml: valid + "issuer: https://x\n", err: `f.yaml:4: mapping key "issuer" already defined at line 2`},
		{name: "empty", yaml: "", err: "f.yaml: the file is empty"},
		{name: "not a mapping", yaml: "- a\n", err: "f.yaml:1: the configuration must be a mapping"},
		{name: "two documents", yaml: valid + "---\nlisten: x\n", err: "f.yaml:4: a second YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := config.Load("f.yaml", []byte(tt.yaml), vars)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Load error = %v; want %q", err, tt.err)
				}
				var errs config.Errors
				if !errors.As(err, &errs) {
					t.Errorf("Load error is %T; want config.Errors", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if tt.check != nil {
				tt.check(t, f.Config)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	os.WriteFile(cert, []byte("x"), 0o600)
	tests := []struct {
		name string
		yaml string
		err  string // "" means valid
	}{
		{name: "minimal", yaml: valid},
		{name: "forward-auth only", yaml: "forward_auth: {}\nissuer: https://sso.example.com/realms/r\naudiences: [api]\n"},
		{name: "skip audience check", yaml: "upstream: http://u\nissuer: https://i/realms/r\ninsecure_skip_audience_check: true\n"},
		{name: "loopback http issuer", yaml: "upstream: http://u\nissuer: http://127.0.0.1:8180/realms/r\naudiences: [a]\n"},
		{name: "http issuer allowed", yaml: "upstream: http://u\nissuer: http://sso/realms/r\naudiences: [a]\nkeys: {insecure_allow_http: true}\n"},
		{
			name: "empty audiences",
			yaml: "upstream: http://u\nissuer: https://i/realms/r\naudiences: []\n",
			err:  "f.yaml:3: audiences is empty; list the aud values this service accepts, or set insecure_skip_audience_check: true to accept any",
		},
		{
			name: "missing audiences",
			yaml: "upstream: http://u\nissuer: https://i/realms/r\n",
			err:  "f.yaml: audiences is empty; list the aud values",
		},
		{name: "extra method not a token", yaml: valid + "extra_methods: [PROPFIND, \"GET /\"]\n", err: `f.yaml:4: extra_methods holds "GET /", which is not an RFC 9110 token`},
		{name: "realm with a quote", yaml: valid + "realm: 'a\"b'\n", err: `f.yaml:4: realm "a\"b" must be printable ASCII`},
		{name: "audiences and skip", yaml: valid + "insecure_skip_audience_check: true\n", err: "f.yaml:4: insecure_skip_audience_check is true but audiences are listed"},
		{name: "empty audience", yaml: "upstream: http://u\nissuer: https://i/r\naudiences: [a, \"\"]\n", err: "f.yaml:3: audiences holds an empty string"},
		{name: "no issuer", yaml: "upstream: http://u\naudiences: [a]\n", err: "f.yaml: issuer is empty; set it to the exact iss of accepted tokens"},
		{name: "jwks_url without issuer", yaml: "upstream: http://u\naudiences: [a]\njwks_url: https://k/certs\n", err: "f.yaml: issuer is empty; set it to the exact iss of accepted tokens"},
		{name: "plain http issuer", yaml: "upstream: http://u\nissuer: http://sso/realms/r\naudiences: [a]\n", err: "f.yaml:2: issuer \"http://sso/realms/r\" uses plain http; use https, or set keys.insecure_allow_http: true"},
		{name: "bad jwks_url scheme", yaml: valid + "jwks_url: ftp://k/certs\n", err: "f.yaml:4: jwks_url \"ftp://k/certs\" must start with https://"},
		{name: "neither upstream nor forward_auth", yaml: "issuer: https://i/r\naudiences: [a]\n", err: "neither upstream nor forward_auth nor ext_authz is set"},
		{name: "ext_authz alone", yaml: "issuer: https://i/r\naudiences: [a]\next_authz: {}\n"},
		{name: "ext_authz bad address", yaml: valid + "ext_authz:\n  listen: nowhere\n", err: "f.yaml:5: ext_authz.listen \"nowhere\" is not host:port"},
		{name: "ext_authz on the main port", yaml: valid + "ext_authz:\n  listen: 127.0.0.1:8080\n", err: "f.yaml:5: ext_authz.listen is the address of another listener"},
		{name: "bad upstream", yaml: "upstream: 127.0.0.1:3000\nissuer: https://i/r\naudiences: [a]\n", err: "f.yaml:1: upstream \"127.0.0.1:3000\" must start with http:// or https://"},
		{name: "upstream with query", yaml: "upstream: http://u/?a=b\nissuer: https://i/r\naudiences: [a]\n", err: "f.yaml:1: upstream \"http://u/?a=b\" must not carry a query"},
		{name: "bad forward-auth path", yaml: valid + "forward_auth: {path: auth}\n", err: "f.yaml:4: forward_auth.path \"auth\" must be a clean absolute path"},
		{name: "bad listen", yaml: valid + "listen: 8080\n", err: "f.yaml:4: listen \"8080\" is not host:port"},
		{name: "bad algorithm", yaml: valid + "verify:\n  algorithms: [RS256, HS256]\n", err: "f.yaml:5: verify.algorithms holds \"HS256\", which is not supported"},
		{name: "negative duration", yaml: valid + "keys:\n  max_stale: -1h\n", err: "f.yaml:5: keys.max_stale is negative"},
		{name: "negative token size", yaml: valid + "verify: {max_token_size: -1}\n", err: "f.yaml:4: verify.max_token_size is negative"},
		{name: "tls without key", yaml: valid + "tls:\n  cert_file: " + cert + "\n", err: "f.yaml:4: tls needs both cert_file and key_file"},
		{name: "tls file missing", yaml: valid + "tls:\n  cert_file: " + cert + "\n  key_file: /nonexistent/key.pem\n", err: "f.yaml:6: tls.key_file: cannot read /nonexistent/key.pem: no such file or directory"},
		{name: "admin without listen", yaml: valid + "admin: {}\n", err: "f.yaml:4: admin.listen is missing"},
		{name: "admin on the main port", yaml: valid + "listen: 127.0.0.1:8080\nadmin: {listen: 127.0.0.1:8080}\n", err: "f.yaml:5: admin.listen is the same address as listen"},
		{name: "log level", yaml: valid + "log: {level: loud}\n", err: "f.yaml:4: log.level \"loud\" is not a level"},
		{name: "bad header name", yaml: valid + "identity_headers:\n  username: \"X User\"\n", err: "f.yaml:5: identity_headers.username \"X User\" is not a valid header name"},
		{name: "reserved header", yaml: valid + "identity_headers:\n  subject: authorization\n", err: "f.yaml:5: identity_headers.subject \"authorization\" is a header HTTP or the proxy owns"},
		{name: "duplicate header", yaml: valid + "identity_headers:\n  email: x-auth-subject\n", err: "f.yaml:5: identity_headers.email \"x-auth-subject\" is also the name of identity_headers.subject"},
		{name: "header off", yaml: valid + "identity_headers:\n  email: \"-\"\n"},
		{name: "role_clients empty string", yaml: valid + "verify: {role_clients: [\"\"]}\n", err: "f.yaml:4: verify.role_clients holds an empty string"},
		{name: "header names equal after folding", yaml: valid + "identity_headers:\n  email: X_Auth_Subject\n", err: "f.yaml:5: identity_headers.email \"X_Auth_Subject\" is also the name of identity_headers.subject"},
		{name: "header name too long", yaml: valid + "identity_headers:\n  email: X-" + strings.Repeat("a", 127) + "\n", err: "f.yaml:5: identity_headers.email is 129 bytes long"},
		{name: "strip list", yaml: valid + "strip_headers: [X-Original-URL, X_Custom]\n"},
		{name: "empty strip list", yaml: valid + "strip_headers: []\n"},
		{name: "strip list bad name", yaml: valid + "strip_headers: [\"X Bad\"]\n", err: "f.yaml:4: strip_headers: \"X Bad\" is not a valid header name"},
		{name: "strip list needed header", yaml: valid + "strip_headers: [X-Original-URL, authorization]\n", err: "f.yaml:4: strip_headers: \"authorization\" cannot be stripped"},
		{name: "strip list forwarding header", yaml: valid + "strip_headers: [X_Forwarded_For]\n", err: "f.yaml:4: strip_headers: \"X_Forwarded_For\" cannot be stripped"},
		{name: "no read timeout", yaml: valid + "timeouts: {read: -1s}\n"},
		{name: "negative idle timeout", yaml: valid + "timeouts: {idle: -1s}\n", err: "f.yaml:4: timeouts.idle is negative"},
		{name: "no connection limit", yaml: valid + "limits: {max_connections: -1}\n"},
		{name: "cluster", yaml: valid + "cluster:\n  redis: {url: \"redis://:pw@127.0.0.1:6379/0\"}\n  secret: " + secret + "\n"},
		{name: "cluster sentinel", yaml: valid + "cluster:\n  redis: {addresses: [\"s1:26379\", \"s2:26379\"], master_name: m}\n  secret: " + secret + "\n"},
		{name: "cluster no redis", yaml: valid + "cluster:\n  secret: " + secret + "\n", err: "f.yaml:4: cluster.redis needs url"},
		{name: "cluster url and addresses", yaml: valid + "cluster:\n  redis:\n    url: redis://h:1\n    addresses: [\"h:1\"]\n  secret: " + secret + "\n", err: "f.yaml:6: cluster.redis has both url and addresses"},
		{name: "cluster bad scheme", yaml: valid + "cluster:\n  redis: {url: \"http://h:1\"}\n  secret: " + secret + "\n", err: `f.yaml:5: cluster.redis.url has scheme "http"`},
		{name: "cluster bad address", yaml: valid + "cluster:\n  redis: {addresses: [h]}\n  secret: " + secret + "\n", err: `f.yaml:5: cluster.redis.addresses holds "h", which is not host:port`},
		{name: "cluster master without sentinels", yaml: valid + "cluster:\n  redis: {url: \"redis://h:1\", master_name: m}\n  secret: " + secret + "\n", err: "cluster.redis.master_name needs the Sentinels' addresses"},
		{name: "cluster no secret", yaml: valid + "cluster:\n  redis: {url: \"redis://h:1\"}\n", err: "f.yaml:4: cluster.secret has 0 bytes; cluster mode needs a secret of at least 32 bytes"},
		{name: "cluster short secret", yaml: valid + "cluster:\n  redis: {url: \"redis://h:1\"}\n  secret: short\n", err: "f.yaml:6: cluster.secret has 5 bytes; cluster mode needs a secret of at least 32 bytes"},
		{name: "cluster negative timeout", yaml: valid + "cluster:\n  redis: {url: \"redis://h:1\", timeout: -1s}\n  secret: " + secret + "\n", err: "cluster.redis.timeout is negative"},
		{name: "cluster tls half a pair", yaml: valid + "cluster:\n  redis:\n    url: rediss://h:1\n    tls: {cert_file: " + cert + "}\n  secret: " + secret + "\n", err: "f.yaml:7: cluster.redis.tls needs both cert_file and key_file"},
		{name: "revocation local", yaml: valid + "revocation: {ttl: 1h}\n"},
		{name: "revocation negative ttl", yaml: valid + "revocation: {ttl: -1h}\n", err: "f.yaml:4: revocation.ttl is negative"},
		{name: "backchannel logout", yaml: valid + "revocation:\n  backchannel_logout: {client_id: app}\n"},
		{name: "backchannel logout no client", yaml: valid + "revocation:\n  backchannel_logout: {path: /bcl}\n", err: "f.yaml:5: revocation.backchannel_logout.client_id is missing"},
		{name: "backchannel logout bad path", yaml: valid + "revocation:\n  backchannel_logout: {client_id: app, path: /a/../b}\n", err: `revocation.backchannel_logout.path "/a/../b" must be a clean absolute path`},
		{name: "backchannel logout on forward-auth path", yaml: valid + "forward_auth: {path: /auth}\nrevocation:\n  backchannel_logout: {client_id: app, path: /auth}\n", err: "revocation.backchannel_logout.path is forward_auth.path"},
		{name: "admin token short", yaml: valid + "admin: {listen: 127.0.0.1:9090}\nrevocation: {admin_token: abc}\n", err: "f.yaml:5: revocation.admin_token is 3 bytes"},
		{name: "admin token not b64token", yaml: valid + "admin: {listen: 127.0.0.1:9090}\nrevocation: {admin_token: \"two words 0123456789abcdef0123456789\"}\n", err: "revocation.admin_token holds characters a bearer token cannot carry"},
		{name: "admin token base64", yaml: valid + "admin: {listen: 127.0.0.1:9090}\nrevocation: {admin_token: \"q1w2e3r4t5y6u7i8o9p0+/ASDFGHJKLzxcvbnm==\"}\n"},
		{name: "admin token without admin", yaml: valid + "revocation: {admin_token: " + secret + "}\n", err: "revocation.admin_token needs the admin listener"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := config.Load("f.yaml", []byte(tt.yaml), env(nil))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			err = f.Validate()
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("Validate = %v; want nil", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("Validate = %v; want %q", err, tt.err)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	f, err := config.Load("f.yaml", []byte("issuer: http://sso/r\naudiences: []\nlog: {level: x}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	var errs config.Errors
	if !errors.As(f.Validate(), &errs) || len(errs) != 4 {
		t.Fatalf("Validate = %v; want 4 problems", errs)
	}
	for i := 1; i < len(errs); i++ {
		if errs[i].Line < errs[i-1].Line {
			t.Errorf("problems not in line order: %v", errs)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	c := config.Config{ForwardAuth: &config.ForwardAuth{}, IdentityHeaders: config.IdentityHeaders{Email: config.Off, Username: "X-User"}}.WithDefaults()
	if c.Listen != config.DefaultListen || c.Realm != "keygate" || c.ForwardAuth.Path != "/auth" ||
		c.Timeouts.ReadHeader != config.DefaultReadHeaderTimeout || c.Timeouts.Write != 0 ||
		c.Timeouts.Read != 60*time.Second || c.Timeouts.Idle != 60*time.Second || c.Limits.MaxConnections != 4096 ||
		len(c.StripHeaders) != len(config.DefaultStripHeaders()) ||
		c.IdentityHeaders.Subject != "X-Auth-Subject" || c.IdentityHeaders.Email != config.Off || c.IdentityHeaders.Username != "X-User" {
		t.Errorf("WithDefaults = %+v", c)
	}
	// Off switches survive a second WithDefaults (callers may apply it
	// before server.New does again).
	off := config.Config{StripHeaders: []string{}, Timeouts: config.Timeouts{Read: -1}, Limits: config.Limits{MaxConnections: -1}}
	c = off.WithDefaults().WithDefaults()
	if c.StripHeaders == nil || len(c.StripHeaders) != 0 || c.Timeouts.Read != -1 || c.Limits.MaxConnections != -1 {
		t.Errorf("WithDefaults twice = strip %q, read %v, max_connections %d; want the off values kept", c.StripHeaders, c.Timeouts.Read, c.Limits.MaxConnections)
	}
}

func TestWarnings(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, []byte("x"), 0o600)
	os.WriteFile(key, []byte("x"), 0o600)
	tls := "tls: {cert_file: " + cert + ", key_file: " + key + "}\n"
	tests := []struct {
		name string
		yaml string
		want []string // each a whole warning line; none means no warning
	}{
		{name: "minimal", yaml: valid},
		{name: "loopback", yaml: valid + "listen: 127.0.0.1:8080\nadmin: {listen: \"[::1]:9090\"}\n"},
		{name: "every interface", yaml: valid + "listen: :8080\n", want: []string{`f.yaml:4: warning: listen ":8080" accepts plain HTTP on every interface`}},
		{name: "0.0.0.0", yaml: valid + "listen: 0.0.0.0:8080\n", want: []string{`f.yaml:4: warning: listen "0.0.0.0:8080" accepts plain HTTP`}},
		{name: "::", yaml: valid + "listen: \"[::]:8080\"\n", want: []string{`f.yaml:4: warning: listen "[::]:8080" accepts plain HTTP`}},
		{name: "every interface with TLS", yaml: valid + "listen: :8443\n" + tls},
		{name: "admin everywhere", yaml: valid + "admin:\n  listen: 0.0.0.0:9090\n", want: []string{`f.yaml:5: warning: admin.listen "0.0.0.0:9090" serves /metrics and /readyz on every interface; bind it to 127.0.0.1`}},
		{name: "refresh 1ms", yaml: valid + "keys:\n  refresh_interval: 1ms\n  min_refetch_interval: 1ms\n", want: []string{
			"f.yaml:5: warning: keys.refresh_interval 1ms refetches the key set more than once a minute",
			"f.yaml:6: warning: keys.min_refetch_interval 1ms lets tokens with unknown kids make keygate fetch keys more than once a second"}},
		{name: "sane intervals", yaml: valid + "keys: {refresh_interval: 1m, min_refetch_interval: 1s}\n"},
		{name: "a year of leeway", yaml: valid + "verify:\n  leeway: 8760h\n", want: []string{"f.yaml:5: warning: verify.leeway 8760h0m0s accepts tokens that long after they expire"}},
		{name: "100 MB tokens", yaml: valid + "verify: {max_token_size: 100000000}\n", want: []string{"f.yaml:4: warning: verify.max_token_size 100000000 is over 64 KiB"}},
		{name: "64 KiB tokens", yaml: valid + "verify: {max_token_size: 65536}\n"},
		{name: "strip list missing defaults", yaml: valid + "strip_headers: [X-Original-URL, X-Rewrite-URL]\n", want: []string{"f.yaml:4: warning: strip_headers replaces the default list and leaves out X-Original-URI, X-Original-Method,"}},
		{name: "strip list with every default", yaml: valid + "strip_headers: [" + strings.Join(config.DefaultStripHeaders(), ", ") + ", X-Custom]\n"},
		{name: "ext_authz everywhere", yaml: valid + "ext_authz:\n  listen: :9191\n", want: []string{`f.yaml:5: warning: ext_authz.listen ":9191" answers plaintext gRPC authorization checks on every interface`}},
		{name: "ext_authz default", yaml: valid + "ext_authz: {}\n"},
		{name: "no connection limit", yaml: valid + "limits:\n  max_connections: -1\n", want: []string{"f.yaml:5: warning: limits.max_connections -1 turns the connection limit off"}},
		{name: "connection limit 0", yaml: valid + "limits:\n  max_connections: 0\n", want: []string{"f.yaml:5: warning: limits.max_connections 0 means the default of 4096, not unlimited"}},
		{name: "huge connection limit", yaml: valid + "limits:\n  max_connections: 1000000\n", want: []string{"f.yaml:5: warning: limits.max_connections 1000000 is above 65536"}},
		{name: "no read timeout", yaml: valid + "timeouts:\n  read: -1s\n", want: []string{"f.yaml:5: warning: timeouts.read -1s turns the body read timeout off"}},
		{name: "specific address", yaml: valid + "listen: 10.0.0.5:8080\n", want: []string{`f.yaml:4: warning: listen "10.0.0.5:8080" accepts plain HTTP on an address beyond loopback`}},
		{name: "host name", yaml: valid + "listen: keygate.internal:8080\n", want: []string{`f.yaml:4: warning: listen "keygate.internal:8080" accepts plain HTTP on an address beyond loopback`}},
		{name: "specific address with TLS", yaml: valid + "listen: 10.0.0.5:8443\n" + tls},
		{name: "localhost", yaml: valid + "listen: localhost:8080\n"},
		{name: "any audience", yaml: "upstream: http://127.0.0.1:3000\nissuer: https://sso.example.com/realms/r\ninsecure_skip_audience_check: true\n",
			want: []string{"f.yaml:3: warning: insecure_skip_audience_check accepts a token issued for any client of the realm"}},
		{name: "keys over http", yaml: valid + "keys:\n  insecure_allow_http: true\n", want: []string{"f.yaml:5: warning: keys.insecure_allow_http fetches keys over plain HTTP"}},
		{name: "revocation without cluster", yaml: valid + "revocation: {ttl: 1h, backchannel_logout: {client_id: app}}\n", want: []string{"f.yaml:4: warning: revocation without cluster: keeps revocations on the instance that received them"}},
		{name: "revocation that nothing feeds", yaml: valid + "revocation: {}\n", want: []string{
			"f.yaml:4: warning: revocation has neither backchannel_logout nor admin_token and no cluster: nothing can revoke",
			"f.yaml:4: warning: revocation without cluster"}},
		{name: "revocation ttl 1m", yaml: valid + "cluster:\n  redis: {url: \"redis://127.0.0.1:6379\"}\n  secret: 0123456789abcdef0123456789abcdef\nrevocation:\n  ttl: 1m\n", want: []string{"f.yaml:8: warning: revocation.ttl 1m0s forgets a revocation after that long"}},
		{name: "redis in clear", yaml: valid + "cluster:\n  redis: {url: \"redis://redis.internal:6379\"}\n  secret: 0123456789abcdef0123456789abcdef\n", want: []string{"f.yaml:5: warning: cluster.redis.url uses plain redis:// to a host beyond loopback"}},
		{name: "redis over TLS", yaml: valid + "cluster:\n  redis: {url: \"rediss://redis.internal:6379\"}\n  secret: 0123456789abcdef0123456789abcdef\n"},
		{name: "untyped tokens", yaml: valid + "verify:\n  allow_untyped_tokens: true\n", want: []string{"f.yaml:5: warning: verify.allow_untyped_tokens accepts tokens without typ"}},
		{name: "insecure switches off", yaml: valid + "keys: {insecure_allow_http: false}\nverify: {allow_untyped_tokens: false}\ninsecure_skip_audience_check: false\n"},
		{name: "a month of stale keys", yaml: valid + "keys:\n  max_stale: 720h\n", want: []string{"f.yaml:5: warning: keys.max_stale 720h0m0s keeps accepting tokens"}},
		{name: "a week of stale keys", yaml: valid + "keys: {max_stale: 168h}\n"},
		{name: "long header and idle timeouts", yaml: valid + "timeouts:\n  read_header: 2m\n  idle: 1h\n", want: []string{
			"f.yaml:5: warning: timeouts.read_header 2m0s lets a client that sends nothing hold a connection that long",
			"f.yaml:6: warning: timeouts.idle 1h0m0s keeps idle keep-alive connections that long"}},
		{name: "header and idle timeouts at the bound", yaml: valid + "timeouts: {read_header: 1m, idle: 10m}\n"},
		{name: "public default", yaml: valid + "access:\n  default: permit_all\n", want: []string{"f.yaml:5: warning: access.default lets anonymous callers reach every path no rule names"}},
		{name: "authenticated default", yaml: valid + "access:\n  default: authenticated\n  rules: [{path: /public/**, require: permit_all}]\n"},
		{name: "strict trailing slash", yaml: valid + "access:\n  default: authenticated\n  rules:\n    - {path: /public/**, require: permit_all}\n    - path: /settings\n      strict_trailing_slash: true\n      require: {role: admin}\n",
			want: []string{"f.yaml:9: warning: access rule 2 (path /settings) sets strict_trailing_slash"}},
		{name: "strict trailing slash false", yaml: valid + "access:\n  rules: [{path: /settings, strict_trailing_slash: false, require: {role: admin}}]\n"},
		{name: "2 GiB token cache", yaml: valid + "verify: {cache_bytes: 2147483648}\n", want: []string{"f.yaml:4: warning: verify.cache_bytes 2147483648 is over 1 GiB"}},
		{name: "5 million cached tokens", yaml: valid + "verify:\n  cache_size: 5000000\n", want: []string{"f.yaml:5: warning: verify.cache_size 5000000 is over 1,000,000 tokens"}},
		{name: "token cache at the bounds", yaml: valid + "verify: {cache_bytes: 1073741824, cache_size: 1000000}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := config.Load("f.yaml", []byte(tt.yaml), env(nil))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if err := f.Validate(); err != nil {
				t.Fatalf("Validate = %v; a warning is not an error", err)
			}
			ws := f.Warnings()
			if len(ws) != len(tt.want) {
				t.Fatalf("Warnings = %q; want %d", ws, len(tt.want))
			}
			for i, w := range ws {
				if !w.Warning || !strings.HasPrefix(w.Error(), tt.want[i]) {
					t.Errorf("warning %d = %q; want it to start with %q", i, w, tt.want[i])
				}
				if !strings.Contains(w.Msg, "; ") {
					t.Errorf("warning %q does not say what to do", w.Msg)
				}
			}
		})
	}
}

// TestExampleConfig keeps examples/keygate.yaml valid.
func TestExampleConfig(t *testing.T) {
	f, err := config.ReadFile("../../../../examples/keygate.yaml", env(map[string]string{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	if ws := f.Warnings(); len(ws) > 0 {
		t.Errorf("the example has warnings:\n%v", ws)
	}

	f, err = config.ReadFile("../../../../examples/cluster.yaml", env(map[string]string{
		"KEYGATE_REDIS_PASSWORD": "pw", "KEYGATE_CLUSTER_SECRET": strings.Repeat("s", 48),
		"KEYGATE_ADMIN_TOKEN": strings.Repeat("a", 48),
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	if ws := f.Warnings(); len(ws) > 0 {
		t.Errorf("examples/cluster.yaml has warnings:\n%v", ws)
	}
	if c := f.Config; c.Cluster == nil || c.Revocation == nil || c.Revocation.BackchannelLogout == nil || c.Revocation.AdminToken == "" {
		t.Errorf("examples/cluster.yaml lost its cluster or revocation blocks: %+v", c)
	}
}

// TestDocsSnippets loads and validates every yaml block of docs/config.md,
// on top of a minimal file when the block has no issuer of its own, so
// that the reference never shows a configuration keygate refuses.
func TestDocsSnippets(t *testing.T) {
	doc, err := os.ReadFile("../../../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	vars := env(map[string]string{
		"KEYGATE_REDIS_PASSWORD": "pw", "KEYGATE_CLUSTER_SECRET": strings.Repeat("s", 48),
		"KEYGATE_ADMIN_TOKEN": strings.Repeat("a", 48),
	})
	blocks := strings.Split(string(doc), "```yaml\n")[1:]
	if len(blocks) < 3 {
		t.Fatalf("docs/config.md has %d yaml blocks; want at least 3", len(blocks))
	}
	for i, b := range blocks {
		b, _, _ = strings.Cut(b, "```")
		if !strings.Contains(b, "issuer:") {
			b = valid + b
		}
		f, err := config.Load("config.md", []byte(b), vars)
		if err == nil {
			err = f.Validate()
		}
		if err != nil {
			t.Errorf("yaml block %d of docs/config.md: %v\n%s", i+1, err, b)
		}
	}
}
