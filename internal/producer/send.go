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
	// acked is the highest seq of this epoch acknowledged before the
	// launch: the server held it before this request arrived.
	acked int64
	// delay holds the request back after a repeated conflict.
	delay time.Duration
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
	// err: the request never got a final answer (retries ended, or the
	// producer is closing); see protocol.Retry for what it matches.
	err error
	// wroteRequest: the failed try had written the request (post only).
	wroteRequest bool
	// uncertain: with an answer, an earlier try of this request may have
	// been applied; with err, some try may have been.
	uncertain bool
	// notified: the request goroutine already gave the messages their
	// result (written).
	notified bool
}

// written reports whether the server acknowledged the batch as appended.
func (r result) written() bool {
	return r.err == nil && (r.status == http.StatusOK || r.status == http.StatusCreated)
}

// send posts one batch under protocol.Retry: network errors, timeouts,
// 429 and 5xx are tried again with the same epoch, seq and body, so that
// the server recognises a repeat of a request it already applied.
func (p *Producer) send(a attempt) result {
	ctx := p.ctx
	defer a.wrote.done()
	if a.after != nil {
		select {
		case <-a.after.ch:
		case <-ctx.Done():
		}
	}
	if a.delay > 0 {
		_ = protocol.Sleep(ctx, a.delay) // a closing producer still tries once
	}
	var last result
	mayBeWritten := false
	err := protocol.Retry(ctx, p.cfg.Retry, func(n int) protocol.Try {
		if n > 1 {
			p.log.Debug("Retrying append", watermill.LogFields{
				"epoch": a.epoch, "seq": a.seq, "try": n, "cause": last.err.Error(),
			})
		}
		// Whether an earlier try may have been applied is what the answer
		// to this one means: a duplicate of ours, or of someone else's.
		earlier := mayBeWritten
		var t protocol.Try
		last, t = p.post(ctx, a)
		last.uncertain = earlier
		mayBeWritten = mayBeWritten || t.MayBeWritten
		return t
	})
	if err != nil {
		return result{a: a, err: err, uncertain: mayBeWritten}
	}
	return last
}

// post makes one try, bounded by the request timeout. A nil Try.Err means
// an answer for the table (see classify); 429 and 5xx are retried.
func (p *Producer) post(parent context.Context, a attempt) (result, protocol.Try) {
	client := p.cfg.Client
	ctx, cancel := client.WithTimeout(parent)
	defer cancel()
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { a.wrote.done() },
	})
	req, err := client.NewRequest(ctx, http.MethodPost, p.cfg.URL, bytes.NewReader(a.body))
	if err != nil {
		return result{a: a, err: err}, protocol.Try{Err: err}
	}
	h := req.Header
	h["Content-Type"] = []string{p.cfg.ContentType}
	h[protocol.HeaderProducerID] = []string{p.cfg.ProducerID}
	h[protocol.HeaderProducerEpoch] = []string{strconv.FormatInt(a.epoch, 10)}
	h[protocol.HeaderProducerSeq] = []string{strconv.FormatInt(a.seq, 10)}
	if a.close {
		h[protocol.HeaderClosed] = []string{"true"}
	}
	resp, written, err := client.Send(req)
	if err != nil {
		err = fmt.Errorf("durablestreams: append to %s: %w", protocol.RedactURL(p.cfg.URL), err)
		return result{a: a, err: err, wroteRequest: written}, protocol.TransportTry(err, written)
	}
	r := result{a: a, status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		r.body = protocol.ErrorBody(b)
	}
	protocol.DrainClose(resp.Body)
	if !protocol.RetryableStatus(r.status) {
		return r, protocol.Try{}
	}
	limit := p.cfg.Retry.MaxElapsed
	if limit <= 0 {
		limit = maxRetryAfter
	}
	httpErr := &protocol.HTTPError{Method: http.MethodPost, URL: protocol.RedactURL(p.cfg.URL), StatusCode: r.status, Body: r.body,
		RetryAfter: protocol.RetryAfter(resp.Header, limit)}
	r.err = httpErr
	return r, protocol.StatusTry(httpErr)
}
