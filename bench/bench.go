package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// job is one measurement. A run of it yields a value for each of its lines
// (a latency run yields both p50 and p99, for example).
type job struct {
	group string
	runs  int
	lines []line
	run   func(ctx context.Context, r *runCtx) (values map[string]float64, err error)
}

// line is one row of the table.
type line struct {
	id     string
	what   string
	unit   string
	ratios []ratio
}

// ratio compares a line's median with another line's. A target (atLeast
// or atMost, zero for none) turns it into a PASS/MISS check.
type ratio struct {
	to      string
	atLeast float64
	atMost  float64
}

// sample is what one run measured for one line. serverCPU and clientCPU
// are CPU seconds per wall second (1.0 is one core busy) of the node
// server and of the client (this process, or the node client of row 4)
// during the timed part of the run.
type sample struct {
	value                float64
	serverCPU, clientCPU float64
}

type bench struct {
	srv    *dstest.Server
	opts   options
	jobs   []job
	corpus map[mode]*corpus
	// fileSrv is the file-backed server of the group-drain rows, started
	// on first use (fileServer) in fileDir.
	fileSrv *dstest.Server
	fileDir string
}

func newBench(srv *dstest.Server, o options) *bench {
	b := &bench{srv: srv, opts: o, corpus: make(map[mode]*corpus)}
	for _, j := range allJobs(b) {
		if o.rows == nil || o.rows[j.group] {
			if o.runs > 0 {
				j.runs = o.runs
			}
			b.jobs = append(b.jobs, j)
		}
	}
	return b
}

// scaled returns n scaled like -messages against its default of 200,000,
// and at least least.
func (b *bench) scaled(n, least int) int {
	n = int(int64(n) * int64(b.opts.messages) / 200_000)
	return max(n, least)
}

// newStream returns a fresh topic name (unique per run) and its stream
// URL; the stream is not created.
func (b *bench) newStream(name string) (topic, url string) {
	topic = "bench-" + name + "-" + uuid.NewString()[:8]
	return topic, b.srv.StreamURL(topic)
}

func (b *bench) baseURL() string { return strings.TrimRight(b.srv.URL, "/") + "/v1/stream" }

// deleteStream frees the server's memory after a run: the server keeps
// every stream in memory and the runs write hundreds of megabytes.
func (b *bench) deleteStream(url string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, url, nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}

// runAll runs every job's runs round-robin: run 1 of every job, then run
// 2, ..., so that a slow phase of the machine hits every row alike. It
// returns the samples by line id.
func (b *bench) runAll(ctx context.Context, progress io.Writer) (map[string][]sample, error) {
	fmt.Fprintln(progress, "  warming up")
	if err := b.warmUp(ctx); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	results := make(map[string][]sample)
	maxRuns := 0
	for _, j := range b.jobs {
		maxRuns = max(maxRuns, j.runs)
	}
	for run := 0; run < maxRuns; run++ {
		for _, j := range b.jobs {
			if run >= j.runs {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			start := time.Now()
			r := &runCtx{b: b, usage: make(map[string]cpuUsage)}
			values, err := j.run(ctx, r)
			if err != nil {
				return nil, fmt.Errorf("row %s (%s), run %d: %w", j.group, j.lines[0].id, run+1, err)
			}
			var parts []string
			for _, l := range j.lines {
				v, ok := values[l.id]
				if !ok {
					return nil, fmt.Errorf("row %s, run %d: no value for %s", j.group, run+1, l.id)
				}
				u := r.usageOf(l.id)
				results[l.id] = append(results[l.id], sample{value: v, serverCPU: u.server, clientCPU: u.client})
				parts = append(parts, fmt.Sprintf("%s=%s", l.id, formatNumber(v, l.unit)))
			}
			fmt.Fprintf(progress, "  run %d/%d %5.1fs  %s  (server CPU %.0f%%, client %.0f%%)\n",
				run+1, j.runs, time.Since(start).Seconds(), strings.Join(parts, "  "), 100*r.last.server, 100*r.last.client)
		}
	}
	return results, nil
}

// warmUp lets node's JIT and both sides' connection pools settle before
// the first measured run.
func (b *bench) warmUp(ctx context.Context) error {
	n := b.scaled(20_000, 100)
	r := &runCtx{b: b, usage: make(map[string]cpuUsage)}
	if _, err := rawBatchedRun(ctx, r, "warmup", jsonMode, n, 4, 100); err != nil {
		return err
	}
	_, err := publishAsyncRun(ctx, r, "warmup", jsonMode, n)
	return err
}
