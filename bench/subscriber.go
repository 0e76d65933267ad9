package main

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	durablestreams "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// backlog writes n messages to a fresh JSON stream (raw, batched; not
// timed) and returns its topic and URL.
func backlog(ctx context.Context, r *runCtx, n int) (topic, url string, c *corpus, err error) {
	topic, url = r.b.newStream("backlog")
	c, err = writeBacklog(ctx, r, url, n)
	return topic, url, c, err
}

// writeBacklog creates the JSON stream at url and writes the corpus's
// first n messages to it (raw, batched; not timed).
func writeBacklog(ctx context.Context, r *runCtx, url string, n int) (*corpus, error) {
	c, err := r.b.corpusOf(jsonMode, n)
	if err != nil {
		return nil, err
	}
	hc := rawClient(4)
	defer hc.CloseIdleConnections()
	if err := createStream(ctx, hc, url, jsonMode); err != nil {
		return nil, err
	}
	bodies := c.batches(100, maxRawBody)
	err = parallel(ctx, 4, len(bodies), func(ctx context.Context, i int) error {
		_, err := send(ctx, hc, "POST", url, jsonMode.contentType(), bodies[i])
		return err
	})
	return c, err
}

// rawCatchUp is one raw catch-up read: its rate, and when the first and
// the last byte of the backlog arrived after the first request went out.
type rawCatchUp struct {
	rate            float64
	firstByte, body time.Duration
}

// rawCatchUpRun reads the backlog with plain GETs (no parsing): the
// ceiling of a catch-up read.
func rawCatchUpRun(ctx context.Context, r *runCtx, url string, n int, lineIDs ...string) (rawCatchUp, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	hc := rawClient(1)
	defer hc.CloseIdleConnections()
	p := newProbe(hc.Transport)
	hc.Transport = p
	elapsed, err := r.timed(func() error {
		_, err := catchUp(ctx, hc, url, nil)
		return err
	}, lineIDs...)
	if err != nil {
		return rawCatchUp{}, err
	}
	sent, first, last := p.times()
	return rawCatchUp{rate: rate(n, elapsed), firstByte: first.Sub(sent), body: last.Sub(sent)}, nil
}

// drain is one run of a drain: its rate, and when it started, when the
// first message was handled (routerDrain only) and when the n-th was.
type drain struct {
	rate               float64
	start, first, done time.Time
}

// routerDrainRun drains the backlog through a Subscriber and a Watermill
// Router handler that only counts (routerDrain).
// A nil hc means the Subscriber's default HTTP client.
func routerDrainRun(ctx context.Context, r *runCtx, topic string, n int, hc *http.Client, lineIDs ...string) (drain, error) {
	return groupDrainRun(ctx, r, r.b.baseURL(), topic, n, hc, "", nil, lineIDs...)
}

// groupDrainRun is routerDrainRun on the server at baseURL, with a
// Checkpoint whose positions go to store, or, without a store, a sharing
// ConsumerGroup (an empty group: neither).
func groupDrainRun(ctx context.Context, r *runCtx, baseURL, topic string, n int, hc *http.Client,
	group string, store durablestreams.OffsetStore, lineIDs ...string) (drain, error) {
	cfg := durablestreams.SubscriberConfig{BaseURL: baseURL, ClientConfig: durablestreams.ClientConfig{HTTPClient: hc}}
	switch {
	case store != nil: // one reader resuming at its stored position
		cfg.Checkpoint, cfg.OffsetStore = group, store
	case group != "": // a sharing group
		cfg.ConsumerGroup = group
	}
	sub, err := durablestreams.NewSubscriber(cfg, nil)
	if err != nil {
		return drain{}, err
	}
	defer sub.Close()
	return routerDrain(ctx, r, sub, topic, n, lineIDs...)
}

// routerDrain drains n messages of topic from sub through a Watermill
// Router handler that only counts; the time runs from Router.Run until
// the handler has seen the n-th message. Any Watermill Subscriber goes,
// so that the peers and GoChannel are measured through the same Router.
func routerDrain(ctx context.Context, r *runCtx, sub message.Subscriber, topic string, n int, lineIDs ...string) (drain, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	if err != nil {
		return drain{}, err
	}
	var handled atomic.Int64
	var first, done time.Time
	all := make(chan struct{})
	router.AddConsumerHandler("drain", topic, sub, func(*message.Message) error {
		switch handled.Add(1) {
		case 1:
			first = time.Now()
			if n == 1 {
				done = first
				close(all)
			}
		case int64(n):
			done = time.Now()
			close(all)
		}
		return nil
	})
	runErr := make(chan error, 1)
	var start time.Time
	elapsed, err := r.timed(func() error {
		start = time.Now()
		go func() { runErr <- router.Run(ctx) }()
		select {
		case <-all:
			return nil
		case err := <-runErr:
			return fmt.Errorf("router stopped after %d of %d messages: %v", handled.Load(), n, err)
		case <-ctx.Done():
			return fmt.Errorf("router handled %d of %d messages: %w", handled.Load(), n, ctx.Err())
		}
	}, lineIDs...)
	closeErr := router.Close()
	if err == nil {
		select {
		case err = <-runErr:
		case <-time.After(15 * time.Second):
			err = fmt.Errorf("router did not stop")
		}
	}
	if err != nil {
		return drain{}, err
	}
	if closeErr != nil {
		return drain{}, closeErr
	}
	if got := handled.Load(); got != int64(n) {
		return drain{}, fmt.Errorf("handler saw %d messages, want %d", got, n)
	}
	return drain{rate: rate(n, elapsed), start: start, first: first, done: done}, nil
}

// goChannelDrainRun drains n messages through the same Router from
// Watermill's in-process GoChannel (persistent, so that a late subscriber
// gets the backlog): the Router's own ceiling, with no I/O at all. The
// messages are published before the timer starts.
func goChannelDrainRun(ctx context.Context, r *runCtx, c *corpus, lineIDs ...string) (drain, error) {
	pubSub := gochannel.NewGoChannel(gochannel.Config{Persistent: true}, watermill.NopLogger{})
	defer pubSub.Close()
	const topic = "bench-gochannel"
	if err := pubSub.Publish(topic, c.messages()...); err != nil {
		return drain{}, err
	}
	return routerDrain(ctx, r, pubSub, topic, len(c.uuids), lineIDs...)
}

// subscriberDrainRun drains the backlog from a Subscriber's channel with
// no Router: receive and Ack. The time runs from Subscribe until the n-th
// Ack.
func subscriberDrainRun(ctx context.Context, r *runCtx, topic string, n int, hc *http.Client, lineIDs ...string) (drain, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	sub, err := durablestreams.NewSubscriber(durablestreams.SubscriberConfig{BaseURL: r.b.baseURL(), ClientConfig: durablestreams.ClientConfig{HTTPClient: hc}}, nil)
	if err != nil {
		return drain{}, err
	}
	defer sub.Close()
	var start, done time.Time
	elapsed, err := r.timed(func() error {
		start = time.Now()
		msgs, err := sub.Subscribe(ctx, topic)
		if err != nil {
			return err
		}
		for i := range n {
			select {
			case msg, ok := <-msgs:
				if !ok {
					return fmt.Errorf("subscription closed after %d of %d messages", i, n)
				}
				msg.Ack()
			case <-ctx.Done():
				return fmt.Errorf("received %d of %d messages: %w", i, n, ctx.Err())
			}
		}
		done = time.Now()
		return nil
	}, lineIDs...)
	if err != nil {
		return drain{}, err
	}
	return drain{rate: rate(n, elapsed), start: start, done: done}, sub.Close()
}

// noGzipClient is the Subscriber's default client without gzip: Go's
// transport asks for gzip unless told not to, and the reference server
// then compresses every read (synchronously, on its only thread).
func noGzipClient() *http.Client {
	hc := protocol.NewHTTPClient(64)
	hc.Transport.(*http.Transport).DisableCompression = true
	return hc
}

// catchUpRun measures row 6 on one backlog: the raw read, then the
// Router, then (diagnostic) the Router with a client that does not ask
// for gzip, and a Subscriber without Router. The Router and Subscriber
// runs send through a probe on the Subscriber's default client (no gzip)
// that tells when the backlog's last byte arrived, so that their time
// splits into fetching and delivering.
func catchUpRun(ctx context.Context, r *runCtx, n int) (map[string]float64, error) {
	topic, url, c, err := backlog(ctx, r, n)
	if err != nil {
		return nil, err
	}
	defer r.b.deleteStream(url)
	ceiling, err := goChannelDrainRun(ctx, r, c, "6-gochannel")
	if err != nil {
		return nil, err
	}
	raw, err := rawCatchUpRun(ctx, r, url, n, "6-raw", "6-ttfb", "6-body")
	if err != nil {
		return nil, err
	}

	hc, p := probedClient(true)
	defer hc.CloseIdleConnections()
	routed, err := routerDrainRun(ctx, r, topic, n, hc, "6", "6-gets", "6-fetch", "6-deliver")
	if err != nil {
		return nil, err
	}
	gets := p.sentRequests(http.MethodGet)
	_, _, fetched := p.times()

	plainHC := noGzipClient()
	defer plainHC.CloseIdleConnections()
	plain, err := routerDrainRun(ctx, r, topic, n, plainHC, "6-nogzip")
	if err != nil {
		return nil, err
	}

	subHC, subProbe := probedClient(true)
	defer subHC.CloseIdleConnections()
	alone, err := subscriberDrainRun(ctx, r, topic, n, subHC, "6-sub", "6-deliver-sub")
	if err != nil {
		return nil, err
	}
	_, _, subFetched := subProbe.times()

	return map[string]float64{
		"6-raw":         raw.rate,
		"6-ttfb":        millis(raw.firstByte),
		"6-body":        millis(raw.body),
		"6-gochannel":   ceiling.rate,
		"6":             routed.rate,
		"6-gets":        float64(gets),
		"6-fetch":       millis(fetched.Sub(routed.start)),
		"6-deliver":     micros(routed.done.Sub(fetched)) / float64(n),
		"6-nogzip":      plain.rate,
		"6-sub":         alone.rate,
		"6-deliver-sub": micros(alone.done.Sub(subFetched)) / float64(n),
	}, nil
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
