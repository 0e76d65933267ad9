package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"

	durablestreams "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// tsResult is the line testserver/bench-ts-producer.mjs prints.
type tsResult struct {
	Messages   int     `json:"messages"`
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpuSeconds"`
	ServerCPU  float64 `json:"serverCpuSeconds"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"firstError"`
}

// tsProducerRun runs the official TypeScript IdempotentProducer (row 4)
// with its defaults on n messages of the same bytes as ours. It times
// itself, from the first append to the end of flush, so node's start-up
// and the building of the messages do not count.
func tsProducerRun(ctx context.Context, r *runCtx, lineID string, n int) (float64, error) {
	const placeholder = "__UUID__"
	template, err := durablestreams.JSONMarshaler{}.Marshal("bench", message.NewMessage(placeholder, jsonMode.payload()))
	if err != nil {
		return 0, err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return 0, fmt.Errorf("node not found on PATH: %w", err)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	_, url := r.b.newStream(lineID)
	script := filepath.Join(dstest.Dir(), "bench-ts-producer.mjs")
	cmd := exec.CommandContext(ctx, node, script, "--url", url, "--count", fmt.Sprint(n), "--template", string(template), "--server-pid", fmt.Sprint(r.b.srv.PID()))
	cmd.Dir = dstest.Dir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var res tsResult
	if _, err := r.timed(cmd.Run, lineID); err != nil {
		return 0, fmt.Errorf("node %s: %w: %s", filepath.Base(script), err, strings.TrimSpace(stderr.String()))
	}
	defer r.b.deleteStream(url)
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil {
		return 0, fmt.Errorf("node %s printed %q: %w", filepath.Base(script), stdout.String(), err)
	}
	if res.Errors > 0 {
		return 0, fmt.Errorf("TypeScript producer: %d errors, first: %s", res.Errors, res.FirstError)
	}
	if res.Seconds <= 0 || res.Messages != n {
		return 0, fmt.Errorf("TypeScript producer: implausible result %+v", res)
	}
	r.last = cpuUsage{server: res.ServerCPU / res.Seconds, client: res.CPUSeconds / res.Seconds}
	r.usage[lineID] = r.last
	c, err := r.b.corpusOf(jsonMode, n)
	if err != nil {
		return 0, err
	}
	return float64(n) / res.Seconds, r.b.verify(ctx, url, c)
}

func nodeVersion() string {
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
