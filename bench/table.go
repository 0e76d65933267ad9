package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// stats are the median, min and max of a line's runs.
type stats struct {
	median, min, max     float64
	serverCPU, clientCPU float64
	runs                 int
}

func summarize(samples []sample) (stats, bool) {
	if len(samples) == 0 {
		return stats{}, false
	}
	pick := func(f func(sample) float64) []float64 {
		v := make([]float64, len(samples))
		for i, s := range samples {
			v[i] = f(s)
		}
		slices.Sort(v)
		return v
	}
	values := pick(func(s sample) float64 { return s.value })
	return stats{
		median:    median(values),
		min:       values[0],
		max:       values[len(values)-1],
		serverCPU: median(pick(func(s sample) float64 { return s.serverCPU })),
		clientCPU: median(pick(func(s sample) float64 { return s.clientCPU })),
		runs:      len(values),
	}, true
}

// median of sorted values.
func median(v []float64) float64 {
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func formatNumber(v float64, unit string) string {
	switch unit {
	case "msgs/s", "µs", "B/msg":
		return thousands(int64(v + 0.5))
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// renderTable prints the Markdown table: one line per row, its ratios to
// the rows it is compared with, and PASS/MISS against its targets.
func renderTable(header string, jobs []job, results map[string][]sample) string {
	summary := make(map[string]stats)
	for id, samples := range results {
		if s, ok := summarize(samples); ok {
			summary[id] = s
		}
	}
	var b strings.Builder
	b.WriteString(header)
	b.WriteString("\n| row | what | unit | median | min | max | ratio | target | result | server CPU | client CPU |\n")
	b.WriteString("|---|---|---|--:|--:|--:|---|---|---|--:|--:|\n")
	for _, j := range jobs {
		for _, l := range j.lines {
			s, ok := summary[l.id]
			if !ok {
				continue
			}
			var ratios, targets, verdicts []string
			for _, r := range l.ratios {
				ref, ok := summary[r.to]
				if !ok || ref.median == 0 {
					ratios = append(ratios, "— (row "+r.to+" not run)")
					continue
				}
				q := s.median / ref.median
				ratios = append(ratios, formatRatio(q)+" "+r.to)
				switch {
				case r.atLeast > 0:
					targets = append(targets, fmt.Sprintf("≥ %.1f× %s", r.atLeast, r.to))
					verdicts = append(verdicts, verdict(q >= r.atLeast))
				case r.atMost > 0:
					targets = append(targets, fmt.Sprintf("≤ %.1f× %s", r.atMost, r.to))
					verdicts = append(verdicts, verdict(q <= r.atMost))
				}
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f%% | %.0f%% |\n",
				l.id, l.what, l.unit,
				formatNumber(s.median, l.unit), formatNumber(s.min, l.unit), formatNumber(s.max, l.unit),
				strings.Join(ratios, ", "), strings.Join(targets, ", "), strings.Join(verdicts, ", "),
				100*s.serverCPU, 100*s.clientCPU)
		}
	}
	b.WriteString("\nMedian, min and max over the runs of each row (runs interleaved, one server, a fresh stream per run). ")
	b.WriteString("CPU columns: CPU seconds per wall second during the timed part (100% = one core); the server is node, single-threaded. ")
	b.WriteString("Client CPU is this Go process, or the node client for row 4.\n")
	return b.String()
}

// formatRatio prints two decimals, three below 0.1 so that a ratio such as
// a group drain's to a plain one does not print as 0.00×.
func formatRatio(q float64) string {
	if q < 0.095 {
		return fmt.Sprintf("%.3f×", q)
	}
	return fmt.Sprintf("%.2f×", q)
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func (b *bench) header() string {
	runs := map[int]bool{}
	for _, j := range b.jobs {
		runs[j.runs] = true
	}
	mode := "full"
	if b.opts.quick {
		mode = "quick (smoke test; numbers not comparable)"
	}
	return fmt.Sprintf(`## Benchmark (make bench)

- Date: %s
- Go: %s %s/%s, %d CPUs (GOMAXPROCS %d)
- Server: @durable-streams/server %s (node %s, in-memory); TypeScript client @durable-streams/client %s
- Mode: %s; %d messages in the big rows
- Messages: %s
`,
		time.Now().UTC().Format("2006-01-02 15:04 MST"),
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0),
		packageVersion("server"), nodeVersion(), packageVersion("client"),
		mode, b.opts.messages, b.describeMessages())
}

// packageVersion reads an installed @durable-streams package's version.
func packageVersion(name string) string {
	raw, err := os.ReadFile(filepath.Join(dstest.Dir(), "node_modules", "@durable-streams", name, "package.json"))
	if err != nil {
		return "unknown"
	}
	var pkg struct {
		Version string `json:"version"`
	}
	if json.Unmarshal(raw, &pkg) != nil || pkg.Version == "" {
		return "unknown"
	}
	return pkg.Version
}
