package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

func TestMain(m *testing.M) {
	// The peak-RSS row re-executes this binary as its child.
	if isChild() {
		os.Exit(runChild(os.Stdout))
	}
	dstest.Main(m)
}

// TestQuickRun runs the whole command on a few hundred messages, so that
// it cannot rot: every row runs, verifies what it wrote and lands in the
// table.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every benchmark row against a server of its own")
	}
	dstest.SkipIfExternal(t, "starts its own server and reads its CPU time")
	goroutines := runtime.NumGoroutine()
	out := filepath.Join(t.TempDir(), "latest.md")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout bytes.Buffer
	err := run(ctx, []string{"-quick", "-messages", "400", "-rss-topics", "20", "-out", out}, &stdout)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stdout.String())
	}
	table, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range allJobs(&bench{opts: options{messages: 400, rssTopics: 20}}) {
		for _, l := range j.lines {
			if !strings.Contains(string(table), "| "+l.id+" |") {
				t.Errorf("table has no row %s:\n%s", l.id, table)
			}
		}
	}
	if !strings.Contains(stdout.String(), string(table)) {
		t.Errorf("stdout does not hold the table written to %s", out)
	}
	if !strings.Contains(string(table), "@durable-streams/server "+packageVersion("server")) || packageVersion("server") == "unknown" {
		t.Errorf("table header lacks the server version:\n%s", table)
	}
	waitGoroutines(t, goroutines)
}

func TestRowsFlag(t *testing.T) {
	o, err := parseFlags([]string{"-rows", "1b, 3", "-quick"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	b := newBench(nil, o)
	var groups []string
	for _, j := range b.jobs {
		groups = append(groups, j.group)
		if j.runs != 1 {
			t.Errorf("row %s: %d runs with -quick, want 1", j.group, j.runs)
		}
	}
	if strings.Join(groups, ",") != "1b,3" {
		t.Errorf("-rows 1b,3 selected %v", groups)
	}
	if _, err := parseFlags([]string{"-rows", "10"}, &bytes.Buffer{}); err == nil {
		t.Error("-rows 10: no error")
	}
}

func TestTableRatiosAndTargets(t *testing.T) {
	jobs := []job{{lines: []line{
		{id: "ref", what: "reference", unit: "msgs/s"},
		{id: "fast", what: "fast", unit: "msgs/s", ratios: []ratio{{to: "ref", atLeast: 0.9}}},
		{id: "slow", what: "slow", unit: "msgs/s", ratios: []ratio{{to: "ref", atLeast: 0.9}}},
		{id: "lat", what: "latency", unit: "µs", ratios: []ratio{{to: "ref", atMost: 1.3}, {to: "missing"}}},
	}}}
	results := map[string][]sample{
		"ref":  {{value: 100}, {value: 300}, {value: 200}},
		"fast": {{value: 190}},
		"slow": {{value: 150}},
		"lat":  {{value: 270}},
	}
	table := renderTable("", jobs, results)
	for _, want := range []string{
		"| ref | reference | msgs/s | 200 | 100 | 300 |",
		"| 0.95× ref | ≥ 0.9× ref | PASS |",
		"| 0.75× ref | ≥ 0.9× ref | MISS |",
		"| 1.35× ref, — (row missing not run) | ≤ 1.3× ref | MISS |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}

// waitGoroutines fails when goroutines started by the command outlive it.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}
