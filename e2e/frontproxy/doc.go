// Package frontproxy holds the tests of keygate's forward-auth mode
// behind real NGINX and Caddy servers (build tag proxies; make proxies).
package frontproxy
