// Command proxychart reads the output of bench/proxyload/run.sh (make
// bench-proxy) on standard input, prints a Markdown table of each case's
// medians, and writes an SVG bar chart of it:
//
//	bench/proxyload/run.sh | tee out.txt
//	go run ./proxychart -svg chart.svg < out.txt
//
// Each case's requests per second, CPU per request and latencies are the
// medians of its runs; the ratios compare a case with the bare proxy
// under the same tokens (repeated or distinct). The chart has no
// dependencies: it is SVG written by hand.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"html"
	"io"
	"log"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// line matches one run of one case, as run.sh prints it.
var line = regexp.MustCompile(`^(.+?)\s+run (\d+)\s+([\d.]+) req/s\s+([\d.]+) µs CPU/req\s+p50 (\S+)\s+p99 (\S+)\s+rss\s+([\d.]+) MiB`)

// peak matches one process's figure on run.sh's last line, "== peak RSS
// (VmHWM): bare 14.4 MiB  keygate 36.2 MiB  ...", whose entries are
// separated by two spaces: a name may hold a comma or a space (the build
// tags of keygate[TAGS]).
var peak = regexp.MustCompile(`^(.+) ([\d.]+) MiB$`)

type runs struct {
	rps, cpu, p50, p99 []float64
}

type row struct {
	name                   string
	rps, cpu, p50, p99     float64
	all                    []float64 // req/s of each run
	xRPS, xCPU, peakRSSMiB float64
}

func main() {
	svgPath := flag.String("svg", "", "write the chart to this file")
	title := flag.String("title", "make bench-proxy", "the chart's title")
	flag.Parse()
	rows, header := parse(os.Stdin)
	if len(rows) == 0 {
		log.Fatal("proxychart: no runs on standard input")
	}
	table(os.Stdout, rows)
	if *svgPath != "" {
		f, err := os.Create(*svgPath)
		if err != nil {
			log.Fatal(err)
		}
		chart(f, rows, *title, header)
		if err := f.Close(); err != nil {
			log.Fatal(err)
		}
	}
}

func parse(r io.Reader) ([]row, string) {
	byName := map[string]*runs{}
	var order []string
	peaks := map[string]float64{}
	header := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		t := sc.Text()
		if strings.HasPrefix(t, "== peak RSS") {
			_, list, _ := strings.Cut(t, ": ")
			for _, f := range strings.Split(list, "  ") {
				if m := peak.FindStringSubmatch(strings.TrimSpace(f)); m != nil {
					peaks[m[1]], _ = strconv.ParseFloat(m[2], 64)
				}
			}
			continue
		}
		if strings.HasPrefix(t, "== 20") && header == "" {
			header = strings.TrimPrefix(t, "== ")
		}
		m := line.FindStringSubmatch(t)
		if m == nil {
			continue
		}
		name := strings.TrimSpace(m[1])
		rr := byName[name]
		if rr == nil {
			rr = &runs{}
			byName[name] = rr
			order = append(order, name)
		}
		rr.rps = append(rr.rps, num(m[3]))
		rr.cpu = append(rr.cpu, num(m[4]))
		rr.p50 = append(rr.p50, dur(m[5]))
		rr.p99 = append(rr.p99, dur(m[6]))
	}
	var rows []row
	for _, n := range order {
		rr := byName[n]
		rows = append(rows, row{name: n, rps: median(rr.rps), cpu: median(rr.cpu), p50: median(rr.p50), p99: median(rr.p99),
			all: rr.rps, peakRSSMiB: peaks[process(n)]})
	}
	// Ratios against the bare proxy with the same tokens.
	for i := range rows {
		_, tokens, _ := strings.Cut(rows[i].name, ", ")
		for _, b := range rows {
			if b.name == "bare, "+tokens {
				rows[i].xRPS, rows[i].xCPU = rows[i].rps/b.rps, rows[i].cpu/b.cpu
			}
		}
	}
	return rows, header
}

// process returns the name of the process a case ran against: the case's
// name up to ", ", as run.sh prints it ("keygate[a,b], 20000 tokens").
func process(name string) string {
	p, _, _ := strings.Cut(name, ", ")
	return p
}

func num(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		log.Fatalf("proxychart: %v", err)
	}
	return f
}

// dur converts a wrk latency (850.00us, 1.23ms, 1.01s) to milliseconds.
func dur(s string) float64 {
	for _, u := range []struct {
		suffix string
		ms     float64
	}{{"us", 1e-3}, {"ms", 1}, {"s", 1e3}, {"m", 60e3}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			return num(v) * u.ms
		}
	}
	return num(s)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func table(w io.Writer, rows []row) {
	fmt.Fprintln(w, "| case | req/s (runs) | × bare | CPU µs/req | × bare | p50 ms | p99 ms | peak RSS MiB |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range rows {
		var all []string
		for _, v := range r.all {
			all = append(all, group(v))
		}
		fmt.Fprintf(w, "| %s | %s (%s) | %.2f | %.1f | %.2f | %.2f | %.2f | %.1f |\n",
			r.name, group(r.rps), strings.Join(all, " / "), r.xRPS, r.cpu, r.xCPU, r.p50, r.p99, r.peakRSSMiB)
	}
}

// group formats v as an integer with thousands separators.
func group(v float64) string {
	s := strconv.Itoa(int(v + 0.5))
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// chart draws two panels of horizontal bars, one bar per case:
// requests per second and CPU per request, each labelled with its value
// and its ratio to the bare proxy.
func chart(w io.Writer, rows []row, title, sub string) {
	const (
		width  = 960
		left   = 250 // case names
		panelW = 300
		gap    = 50
		barH   = 18
		rowH   = 26
		top    = 70
	)
	height := top + len(rows)*rowH + 40
	var maxRPS, maxCPU float64
	for _, r := range rows {
		maxRPS, maxCPU = max(maxRPS, r.rps), max(maxCPU, r.cpu)
	}
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %[1]d %[2]d" font-family="sans-serif" font-size="12">`, width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>`)
	p(`<text x="10" y="20" font-size="15" font-weight="bold">%s</text>`, html.EscapeString(title))
	p(`<text x="10" y="38" fill="#555">%s</text>`, html.EscapeString(sub))
	x1, x2 := left, left+panelW+gap+90
	p(`<text x="%d" y="60" font-weight="bold">requests/s (median; × bare, same tokens)</text>`, x1)
	p(`<text x="%d" y="60" font-weight="bold">proxy CPU µs per request (× bare)</text>`, x2)
	for i, r := range rows {
		y := top + i*rowH
		color := "#4e79a7"
		switch {
		case strings.HasPrefix(r.name, "bare"):
			color = "#9c9c9c"
		case strings.HasPrefix(r.name, "floor"):
			color = "#e15759"
		case strings.Contains(r.name, "@"):
			color = "#f28e2b"
		case strings.Contains(r.name, "["):
			color = "#59a14f"
		}
		p(`<text x="%d" y="%d" text-anchor="end">%s</text>`, left-8, y+13, html.EscapeString(r.name))
		wr := float64(panelW) * r.rps / maxRPS
		p(`<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`, x1, y, wr, barH, color)
		p(`<text x="%.1f" y="%d">%s (%.2f×)</text>`, float64(x1)+wr+4, y+13, group(r.rps), r.xRPS)
		wc := float64(panelW) * r.cpu / maxCPU
		p(`<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`, x2, y, wc, barH, color)
		p(`<text x="%.1f" y="%d">%.1f (%.2f×)</text>`, float64(x2)+wc+4, y+13, r.cpu, r.xCPU)
	}
	p(`<text x="10" y="%d" fill="#555">grey: bare httputil.ReverseProxy; red: + crypto/rsa RS256 verify per request, no cache; blue: keygate; green: keygate built with tags; orange: keygate at a baseline revision</text>`, height-12)
	p(`</svg>`)
}
