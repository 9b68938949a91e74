# keygate: `make test` runs every test tier; see README.md.
GO ?= go

.PHONY: test check quick e2e proxies bench bench-proxy fuzz

# test runs everything: static checks, then the quick tier with the race
# detector, then the e2e tier against a real Keycloak, then forward-auth
# behind real NGINX and Caddy.
test: check quick e2e proxies

# STATICCHECK is run with go run at a pinned version: nothing to install.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

# check fails on unformatted files, vet findings and staticcheck findings,
# the build-tagged tiers, the build without ext_authz and the profiling
# build included.
check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) -tags e2e,proxies ./...
	$(GO) vet -tags keygate_noextauthz,keygate_pprof ./cmd/keygate/...
	$(GO) run $(STATICCHECK) -tags keygate_noextauthz,keygate_pprof ./cmd/keygate/...

# quick is the unit tier: every package against the in-process test issuer,
# and the cluster-mode packages against a real redis-server they start on
# loopback (installed from Debian's packages when missing); then the
# binary's packages again as built without ext_authz (keygate_noextauthz).
quick:
	scripts/redis.sh
	KEYGATE_REQUIRE_REDIS=1 $(GO) test -race -count=1 ./...
	KEYGATE_REQUIRE_REDIS=1 $(GO) test -count=1 -tags keygate_noextauthz ./cmd/keygate/...

# e2e is the end-to-end tier: tokens a real Keycloak issued, fetched once
# into .cache/ and started on loopback (see e2e/README.md). Keycloak is
# stopped afterwards, also when tests fail; if it cannot be fetched or
# started, e2e fails.
e2e:
	scripts/redis.sh
	KEYGATE_REQUIRE_REDIS=1 GO=$(GO) scripts/e2e.sh

# proxies runs keygate serve (proxy mode, and forward-auth behind the
# examples/ NGINX and Caddy configs) in front of real Python (wsgiref) and
# Node (Express) applications, plus a connection flood; the servers come
# from Debian's packages and Express from npm ci, installed when missing.
# The differential test of the request seam (cmd/keygate/internal/seamtest)
# is part of quick.
proxies:
	GO=$(GO) scripts/proxies.sh

# bench runs the library's benchmarks, then the peer comparison of
# BENCHMARKS.md from its own module.
bench:
	$(GO) test -run XXX -bench . -benchmem .
	cd bench && $(GO) test -run XXX -bench . -benchtime 2s -count 6

# bench-proxy runs wrk through the keygate proxy and a bare
# httputil.ReverseProxy to the same upstream, on loopback.
bench-proxy:
	GO=$(GO) bench/proxyload/run.sh

# fuzz runs each fuzz target for FUZZTIME.
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run XXX -fuzz FuzzSplit -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./internal/jose
	$(GO) test -run XXX -fuzz FuzzScanner -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./internal/jose
	$(GO) test -run XXX -fuzz FuzzRSAVerify -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./internal/jose
	$(GO) test -run XXX -fuzz FuzzDecodeClaims -fuzztime $(FUZZTIME) -fuzzminimizetime 5s .
	$(GO) test -run XXX -fuzz FuzzVerify -fuzztime $(FUZZTIME) -fuzzminimizetime 5s .
