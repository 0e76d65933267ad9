package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	durablestreams "github.com/durablestreams/watermill-durablestreams"
)

// The peak-RSS row runs the publisher in a child process (this binary
// again, told so by the environment, which a test binary passes through
// too), so that nothing else of the benchmark counts in its peak.
const (
	envChild      = "BENCHCMD_CHILD"
	envBaseURL    = "BENCHCMD_BASE_URL"
	envTopics     = "BENCHCMD_TOPICS"
	rssPerTopic   = 10 // messages published to each topic
	rssPublishers = 64
)

func isChild() bool { return os.Getenv(envChild) == "rss" }

// rssResult is the line a child prints.
type rssResult struct {
	PeakKiB int64   `json:"peak_kib"`
	Seconds float64 `json:"seconds"`
	// cpu is the child's user+system time, from its process state.
	cpu time.Duration
}

// runChild publishes rssPerTopic messages to each of $BENCHCMD_TOPICS
// fresh topics with an async Publisher from rssPublishers goroutines,
// closes it, and prints its peak RSS (VmHWM).
func runChild(stdout io.Writer) int {
	if err := publishManyTopics(stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		return 1
	}
	return 0
}

func publishManyTopics(stdout io.Writer) error {
	topics, err := strconv.Atoi(os.Getenv(envTopics))
	if err != nil || topics < 1 {
		return fmt.Errorf("%s=%q: want a positive number", envTopics, os.Getenv(envTopics))
	}
	ctx, cancel := withTimeout(context.Background())
	defer cancel()
	var failures atomic.Int64
	pub, err := durablestreams.NewPublisher(durablestreams.PublisherConfig{
		BaseURL:      os.Getenv(envBaseURL),
		Async:        true,
		OnAsyncError: func(string, string, error) { failures.Add(1) },
	}, nil)
	if err != nil {
		return err
	}
	defer pub.Close()
	prefix := "bench-rss-" + uuid.NewString()[:8] + "-"
	payload := jsonMode.payload()
	start := time.Now()
	err = parallel(ctx, rssPublishers, topics, func(ctx context.Context, i int) error {
		topic := prefix + strconv.Itoa(i)
		for j := 0; j < rssPerTopic; j++ {
			msg := message.NewMessage(uuid.NewString(), payload)
			msg.SetContext(ctx)
			if err := pub.Publish(topic, msg); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := pub.Close(); err != nil {
		return err
	}
	if f := failures.Load(); f > 0 {
		return fmt.Errorf("%d async publishes failed", f)
	}
	peak, err := peakRSS()
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(rssResult{PeakKiB: peak, Seconds: time.Since(start).Seconds()})
}

// peakRSS returns this process's VmHWM in KiB.
func peakRSS() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}

// rssChild runs a child on the given number of topics.
func rssChild(ctx context.Context, b *bench, topics int) (rssResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return rssResult{}, err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), envChild+"=rss", envBaseURL+"="+b.baseURL(), envTopics+"="+strconv.Itoa(topics))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return rssResult{}, fmt.Errorf("rss child: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var res rssResult
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil {
		return rssResult{}, fmt.Errorf("rss child printed %q: %w", stdout.String(), err)
	}
	res.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return res, nil
}

// rssRun measures the peak RSS of a publisher on one topic and on many;
// the difference per topic is what a topic costs while its producer lives.
func rssRun(ctx context.Context, r *runCtx, oneID, manyID, perTopicID string, topics int) (map[string]float64, error) {
	var one, many rssResult
	wall, err := r.timed(func() (err error) {
		one, err = rssChild(ctx, r.b, 1)
		return err
	}, oneID)
	if err != nil {
		return nil, err
	}
	r.setClientCPU(one.cpu.Seconds()/wall.Seconds(), oneID)
	wall, err = r.timed(func() (err error) {
		many, err = rssChild(ctx, r.b, topics)
		return err
	}, manyID, perTopicID)
	if err != nil {
		return nil, err
	}
	r.setClientCPU(many.cpu.Seconds()/wall.Seconds(), manyID, perTopicID)
	const kibPerMiB = 1024
	return map[string]float64{
		oneID:      float64(one.PeakKiB) / kibPerMiB,
		manyID:     float64(many.PeakKiB) / kibPerMiB,
		perTopicID: float64(many.PeakKiB-one.PeakKiB) / float64(max(topics-1, 1)),
	}, nil
}
