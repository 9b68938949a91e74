//go:build keygate_pprof

package main

import (
	"log"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"
	"runtime"
)

// Built with -tags keygate_pprof (make bench-proxy does with
// VARIANT_TAGS=keygate_pprof and KEYGATE_ENV=KEYGATE_PPROF_ADDR=...), keygate
// serves net/http/pprof on the loopback address in KEYGATE_PPROF_ADDR,
// for profiling a running proxy, and samples one allocation per 4 KiB
// (not 512 KiB) so that a heap profile shows the small steady heap of a
// proxy. Release builds do not contain this file.
func init() {
	addr := os.Getenv("KEYGATE_PPROF_ADDR")
	if addr == "" {
		return
	}
	if host, _, err := net.SplitHostPort(addr); err != nil || !net.ParseIP(host).IsLoopback() {
		log.Fatalf("keygate: KEYGATE_PPROF_ADDR must be a loopback host:port, not %q", addr)
	}
	runtime.MemProfileRate = 4096
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatalf("keygate: pprof listener: %v", err)
	}
	go http.Serve(ln, nil)
}
