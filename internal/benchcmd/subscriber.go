package main

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	durablestreams "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// backlog writes n messages to a fresh JSON stream (raw, batched; not
// timed) and returns its topic and URL.
func backlog(ctx context.Context, r *runCtx, n int) (topic, url string, c *corpus, err error) {
	c, err = r.b.corpusOf(jsonMode, n)
	if err != nil {
		return "", "", nil, err
	}
	hc := rawClient(4)
	defer hc.CloseIdleConnections()
	topic, url = r.b.newStream("backlog")
	if err := createStream(ctx, hc, url, jsonMode); err != nil {
		return "", "", nil, err
	}
	bodies := c.batches(100, maxRawBody)
	err = parallel(ctx, 4, len(bodies), func(ctx context.Context, i int) error {
		_, err := send(ctx, hc, "POST", url, jsonMode.contentType(), bodies[i])
		return err
	})
	return topic, url, c, err
}

// rawCatchUpRun reads the backlog with plain GETs (no parsing): the
// ceiling of a catch-up read.
func rawCatchUpRun(ctx context.Context, r *runCtx, lineID, url string, n int) (float64, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	hc := rawClient(1)
	defer hc.CloseIdleConnections()
	elapsed, err := r.timed(func() error {
		_, err := catchUp(ctx, hc, url, nil)
		return err
	}, lineID)
	return rate(n, elapsed), err
}

// routerDrainRun drains the backlog through a Subscriber and a Watermill
// Router handler that only counts; the time runs from Router.Run until
// the handler has seen the n-th message.
// A nil hc means the Subscriber's default HTTP client.
func routerDrainRun(ctx context.Context, r *runCtx, lineID, topic string, n int, hc *http.Client) (float64, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	sub, err := durablestreams.NewSubscriber(durablestreams.SubscriberConfig{BaseURL: r.b.baseURL(), HTTPClient: hc}, nil)
	if err != nil {
		return 0, err
	}
	defer sub.Close()
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	if err != nil {
		return 0, err
	}
	var handled atomic.Int64
	all := make(chan struct{})
	router.AddConsumerHandler("drain", topic, sub, func(*message.Message) error {
		if handled.Add(1) == int64(n) {
			close(all)
		}
		return nil
	})
	runErr := make(chan error, 1)
	elapsed, err := r.timed(func() error {
		go func() { runErr <- router.Run(ctx) }()
		select {
		case <-all:
			return nil
		case err := <-runErr:
			return fmt.Errorf("router stopped after %d of %d messages: %v", handled.Load(), n, err)
		case <-ctx.Done():
			return fmt.Errorf("router handled %d of %d messages: %w", handled.Load(), n, ctx.Err())
		}
	}, lineID)
	closeErr := router.Close()
	if err == nil {
		select {
		case err = <-runErr:
		case <-time.After(15 * time.Second):
			err = fmt.Errorf("router did not stop")
		}
	}
	if err != nil {
		return 0, err
	}
	if closeErr != nil {
		return 0, closeErr
	}
	if got := handled.Load(); got != int64(n) {
		return 0, fmt.Errorf("handler saw %d messages, want %d", got, n)
	}
	return rate(n, elapsed), nil
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
// for gzip.
func catchUpRun(ctx context.Context, r *runCtx, rawID, routerID, noGzipID string, n int) (map[string]float64, error) {
	topic, url, _, err := backlog(ctx, r, n)
	if err != nil {
		return nil, err
	}
	defer r.b.deleteStream(url)
	raw, err := rawCatchUpRun(ctx, r, rawID, url, n)
	if err != nil {
		return nil, err
	}
	drained, err := routerDrainRun(ctx, r, routerID, topic, n, nil)
	if err != nil {
		return nil, err
	}
	hc := noGzipClient()
	defer hc.CloseIdleConnections()
	plain, err := routerDrainRun(ctx, r, noGzipID, topic, n, hc)
	if err != nil {
		return nil, err
	}
	return map[string]float64{rawID: raw, routerID: drained, noGzipID: plain}, nil
}
