package main

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	durablestreams "github.com/durablestreams/watermill-durablestreams"
)

// pubResult is one Publisher run: throughput and what the process
// allocated per message meanwhile (runtime.MemStats deltas).
type pubResult struct {
	rate         float64
	allocsPerMsg float64
	bytesPerMsg  float64
}

// syncGoroutines is the watermill-benchmark setup: 64 goroutines, each
// publishing one message per call.
const syncGoroutines = 64

// A nil hc means the Publisher's default HTTP client.
func newPublisher(b *bench, m mode, async bool, failures *atomic.Int64, hc *http.Client) (*durablestreams.Publisher, error) {
	return durablestreams.NewPublisher(durablestreams.PublisherConfig{
		BaseURL:      b.baseURL(),
		ClientConfig: durablestreams.ClientConfig{HTTPClient: hc},
		Marshaler:    m.marshaler(),
		Async:        async,
		Linger:       b.opts.linger,
		MaxInFlight:  b.opts.inFlight,
		OnAsyncError: func(string, string, error) {
			failures.Add(1)
		},
	}, nil)
}

func bindContext(ctx context.Context, msgs []*message.Message) {
	for _, msg := range msgs {
		msg.SetContext(ctx)
	}
}

// measureAllocs runs fn and returns the allocations made meanwhile, per
// message.
func measureAllocs(n int, fn func() error) (allocs, bytes float64, err error) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err = fn()
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / float64(n), float64(after.TotalAlloc-before.TotalAlloc) / float64(n), err
}

// publishAsyncRun: one goroutine publishes n messages to a fresh topic
// with an async Publisher, then Close (which waits for every
// acknowledgement). The time runs from the first Publish to Close's return.
func publishAsyncRun(ctx context.Context, r *runCtx, lineID string, m mode, n int) (pubResult, error) {
	return publishRun(ctx, r, lineID, m, n, true, nil, func(_ context.Context, pub *durablestreams.Publisher, topic string, msgs []*message.Message) error {
		for _, msg := range msgs {
			if err := pub.Publish(topic, msg); err != nil {
				return err
			}
		}
		return pub.Close()
	})
}

// publishSyncRun: syncGoroutines goroutines publish n messages, one per
// synchronous call, to one fresh topic. A nil hc means the Publisher's
// default HTTP client.
func publishSyncRun(ctx context.Context, r *runCtx, lineID string, n int, hc *http.Client) (pubResult, error) {
	return publishRun(ctx, r, lineID, jsonMode, n, false, hc, func(ctx context.Context, pub *durablestreams.Publisher, topic string, msgs []*message.Message) error {
		return parallel(ctx, syncGoroutines, len(msgs), func(_ context.Context, i int) error {
			return pub.Publish(topic, msgs[i])
		})
	})
}

// publishRun times publish (and its allocations) on a fresh topic, then
// checks that the stream holds exactly what was published.
func publishRun(ctx context.Context, r *runCtx, lineID string, m mode, n int, async bool, hc *http.Client,
	publish func(context.Context, *durablestreams.Publisher, string, []*message.Message) error) (pubResult, error) {
	c, err := r.b.corpusOf(m, n)
	if err != nil {
		return pubResult{}, err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	msgs := c.messages()
	bindContext(ctx, msgs)
	topic, url := r.b.newStream(lineID)
	var failures atomic.Int64
	pub, err := newPublisher(r.b, m, async, &failures, hc)
	if err != nil {
		return pubResult{}, err
	}
	defer pub.Close()
	var res pubResult
	elapsed, err := r.timed(func() error {
		res.allocsPerMsg, res.bytesPerMsg, err = measureAllocs(n, func() error {
			return publish(ctx, pub, topic, msgs)
		})
		return err
	}, lineID)
	if err != nil {
		return res, err
	}
	defer r.b.deleteStream(url)
	// Idempotent: flushes what a sync run has nothing left of.
	if err := pub.Close(); err != nil {
		return res, err
	}
	if f := failures.Load(); f > 0 {
		return res, fmt.Errorf("%d async publishes failed", f)
	}
	res.rate = rate(n, elapsed)
	return res, r.b.verify(ctx, url, c)
}

// publishLatencies publishes n messages one at a time, synchronously, with
// nothing else in flight, and returns each call's duration. The topic's
// stream and producer are set up (and the connection warm) first.
func publishLatencies(ctx context.Context, b *bench, n int) ([]time.Duration, error) {
	const warm = 50
	c, err := b.corpusOf(jsonMode, n+warm)
	if err != nil {
		return nil, err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	msgs := c.messages()
	bindContext(ctx, msgs)
	topic, url := b.newStream("latency-pub")
	var failures atomic.Int64
	pub, err := newPublisher(b, jsonMode, false, &failures, nil)
	if err != nil {
		return nil, err
	}
	defer pub.Close()
	defer b.deleteStream(url)
	lat := make([]time.Duration, 0, n)
	for i, msg := range msgs {
		start := time.Now()
		if err := pub.Publish(topic, msg); err != nil {
			return nil, err
		}
		if i >= warm {
			lat = append(lat, time.Since(start))
		}
	}
	return lat, pub.Close()
}
