// Package frontproxy holds the tests of `keygate serve` with real servers
// around it (build tag proxies; make proxies, which installs them):
//
//   - TestNGINX, TestCaddy: forward-auth behind NGINX and Caddy, configured
//     with the files in examples/ (the tests render those files, so the
//     examples are what is tested).
//   - TestSeam: the inputs of issue #7 (header names an application reads
//     as keygate's, "#" in the target, method case, trailing slashes,
//     double encoding, case, routing and identity headers of other stacks,
//     malformed tokens) sent as raw bytes to a Python application on the
//     standard wsgiref server (testdata/wsgi_upstream.py) and to an Express
//     application (testdata/express), each behind keygate's proxy mode and
//     behind the NGINX and Caddy examples. Each application answers with
//     what it acted on; the test checks that the rules allow the caller
//     that method and route, and that the application read only the
//     caller's verified identity.
//   - TestForwardAuthProtocol: the same inputs as forward-auth headers.
//   - TestFrontHeaders: forwarding headers a client made up (Forwarded,
//     X-Forwarded-Host, X-Real-IP, ...) and Connection headers naming
//     keygate's identity headers, through keygate's proxy and the NGINX
//     and Caddy examples: no client value reaches the application, the
//     identity headers arrive, and WebSocket upgrades still pass.
//   - TestExhaustion: 3000 idle connections against keygate running with
//     an open-file limit of 1024 and limits.max_connections 500; a
//     legitimate request must still reach the upstream, keygate must not
//     use up its file descriptors, and its peak RSS (VmHWM) is reported
//     and must stay under 256 MiB.
//
// keygate runs as its own process, built once by TestMain; the test
// issuer (keycloaktest) runs in the test process.
package frontproxy
