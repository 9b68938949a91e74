package main

import (
	"strings"
	"testing"
)

// TestParsePeaks checks that each case gets its process's peak RSS from
// run.sh's last line, for every kind of name run.sh prints: a baseline
// revision (@) and a build with several tags, comma- or space-separated.
func TestParsePeaks(t *testing.T) {
	out := `== 2026-11-30T07:55:00Z  762d619  wrk -t1 -c32 -d10s  load: 0.87 0.5 0.4  pinned
bare, repeated                       run 1       20000 req/s    50.0 µs CPU/req  p50 1.40ms   p99 4.20ms   rss  14.0 MiB  non-2xx 0
keygate, repeated                    run 1       18000 req/s    54.0 µs CPU/req  p50 1.50ms   p99 5.60ms   rss  25.0 MiB  non-2xx 0
keygate[keygate_noextauthz,keygate_pprof], repeated run 1  18500 req/s    53.0 µs CPU/req  p50 1.40ms   p99 5.30ms   rss  20.0 MiB  non-2xx 0
keygate[a b], repeated               run 1       18400 req/s    53.0 µs CPU/req  p50 1.40ms   p99 5.30ms   rss  19.0 MiB  non-2xx 0
keygate@b4642fe, repeated            run 1       17000 req/s    56.0 µs CPU/req  p50 1.50ms   p99 5.70ms   rss  40.0 MiB  non-2xx 0
== peak RSS (VmHWM): bare 14.4 MiB  floor 14.9 MiB  keygate 36.2 MiB  keygate[keygate_noextauthz,keygate_pprof] 30.1 MiB  keygate[a b] 29.5 MiB  keygate@b4642fe 43.7 MiB
`
	rows, _ := parse(strings.NewReader(out))
	want := map[string]float64{
		"bare, repeated":    14.4,
		"keygate, repeated": 36.2,
		"keygate[keygate_noextauthz,keygate_pprof], repeated": 30.1,
		"keygate[a b], repeated":                              29.5,
		"keygate@b4642fe, repeated":                           43.7,
	}
	if len(rows) != len(want) {
		t.Fatalf("parse found %d cases; want %d", len(rows), len(want))
	}
	for _, r := range rows {
		if r.peakRSSMiB != want[r.name] {
			t.Errorf("%s: peak RSS %v MiB; want %v", r.name, r.peakRSSMiB, want[r.name])
		}
	}
}
