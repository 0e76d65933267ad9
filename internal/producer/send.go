package producer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// maxRetryAfter caps a server's Retry-After when the policy has no
// MaxElapsed to do it.
const maxRetryAfter = time.Minute

// attempt is everything a request goroutine needs; it never touches the
// batch itself, which belongs to the owner.
type attempt struct {
	b     *batch
	epoch int64
	seq   int64
	body  []byte
	close bool
	// after is the previous launch's write signal: this request is not
	// sent before that one has been written, so that pipelined requests
	// leave in seq order and seldom overtake each other on the way in
	// (the server answers an overtaking request with 409, and it must be
	// sent again). wrote is this launch's own signal.
	after, wrote *writeSignal
}

// writeSignal closes once a request has been written to its connection,
// or has given up.
type writeSignal struct {
	once sync.Once
	ch   chan struct{}
}

func newWriteSignal() *writeSignal { return &writeSignal{ch: make(chan struct{})} }

func (w *writeSignal) done() { w.once.Do(func() { close(w.ch) }) }

// result is the final answer for an attempt, after retries.
type result struct {
	a      attempt
	status int
	header http.Header
	body   string
	// err: the request never got a final answer (retries exhausted, or the
	// producer is closing).
	err error
	// uncertain: some try ended without a definite answer, so the server
	// may have written the batch.
	uncertain bool
	// notified: the request goroutine already gave the messages their
	// result (written).
	notified bool
}

// written reports whether the server acknowledged the batch as appended.
func (r result) written() bool {
	return r.err == nil && (r.status == http.StatusOK || r.status == http.StatusCreated)
}

// send posts one batch, retrying network errors, timeouts, 429 and 5xx
// with the same epoch, seq and body, so that the server recognises a
// repeat of a request it already applied.
func (p *Producer) send(a attempt) result {
	ctx := p.ctx
	defer a.wrote.done()
	if a.after != nil {
		select {
		case <-a.after.ch:
		case <-ctx.Done():
		}
	}
	policy := p.cfg.Retry
	start := time.Now()
	uncertain := false
	for try := 1; ; try++ {
		r := p.post(ctx, a)
		if r.err == nil && !protocol.RetryableStatus(r.status) {
			r.uncertain = uncertain
			return r
		}
		if ctx.Err() != nil {
			return result{a: a, err: context.Cause(ctx), uncertain: true}
		}
		if r.err != nil && !protocol.Retryable(r.err) {
			// A refused certificate, a failing HeaderFunc: trying again
			// cannot help, and such a request never reached the stream.
			return result{a: a, err: r.err, uncertain: uncertain}
		}
		cause := r.err
		if cause == nil {
			cause = &protocol.HTTPError{Method: http.MethodPost, URL: protocol.RedactURL(p.cfg.URL), StatusCode: r.status, Body: r.body}
		}
		// A 429 is refused before anything is applied; anything else (a
		// lost connection, a timeout, a 5xx from a proxy) may come after.
		if r.status != http.StatusTooManyRequests {
			uncertain = true
		}
		wait := policy.Backoff(try)
		if r.header != nil {
			limit := policy.MaxElapsed
			if limit <= 0 {
				limit = maxRetryAfter
			}
			wait = max(wait, protocol.RetryAfter(r.header, limit))
		}
		if !policy.Allows(try, start, wait) {
			return result{a: a, uncertain: uncertain, err: fmt.Errorf(
				"%w after %d tries in %s (the batch may or may not have been written): %w",
				protocol.ErrRetriesExhausted, try, time.Since(start).Round(time.Millisecond), cause)}
		}
		p.log.Debug("Retrying append", watermill.LogFields{
			"epoch": a.epoch, "seq": a.seq, "try": try, "wait": wait, "cause": cause.Error(),
		})
		if err := protocol.Sleep(ctx, wait); err != nil {
			return result{a: a, err: context.Cause(ctx), uncertain: true}
		}
	}
}

// post makes one try, bounded by the request timeout.
func (p *Producer) post(parent context.Context, a attempt) result {
	client := p.cfg.Client
	ctx, cancel := client.WithTimeout(parent)
	defer cancel()
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { a.wrote.done() },
	})
	req, err := client.NewRequest(ctx, http.MethodPost, p.cfg.URL, bytes.NewReader(a.body))
	if err != nil {
		return result{a: a, err: err}
	}
	h := req.Header
	h["Content-Type"] = []string{p.cfg.ContentType}
	h[protocol.HeaderProducerID] = []string{p.cfg.ProducerID}
	h[protocol.HeaderProducerEpoch] = []string{strconv.FormatInt(a.epoch, 10)}
	h[protocol.HeaderProducerSeq] = []string{strconv.FormatInt(a.seq, 10)}
	if a.close {
		h[protocol.HeaderClosed] = []string{"true"}
	}
	resp, err := client.Do(req)
	if err != nil {
		return result{a: a, err: fmt.Errorf("durablestreams: append to %s: %w", protocol.RedactURL(p.cfg.URL), err)}
	}
	r := result{a: a, status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		r.body = protocol.ErrorBody(b)
	}
	protocol.DrainClose(resp.Body)
	return r
}
