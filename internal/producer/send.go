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
	final bool // with close: a final message
	// contentType is what the request says it carries.
	contentType string
	// acked is the highest seq of this epoch acknowledged before the
	// launch: the server held it before this request arrived.
	acked int64
	// delay holds the request back after a repeated conflict.
	delay time.Duration
	// maybeLanded: an earlier launch with this (epoch, seq) may have been
	// written (batch.maybeLanded when launched).
	maybeLanded bool
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
	a   attempt
	ans answer
	// earlier: with an answer, an earlier try of the request may have been
	// applied.
	earlier bool
	// notified: the request goroutine already gave the messages their
	// result (written).
	notified bool
}

// sent is the attempt as the answer table sees it, given the highest seq
// of its epoch acknowledged by now.
func (a attempt) sent(ackedNow int64) sent {
	return sent{epoch: a.epoch, seq: a.seq, contentType: a.contentType, close: a.close, final: a.final,
		ackedAtSend: a.acked, ackedNow: max(ackedNow, a.acked)}
}

// sent is what the table needs to know of the request that drew r.
func (r result) sent(ackedNow int64) sent {
	s := r.a.sent(ackedNow)
	s.earlier = r.earlier
	return s
}

// written reports whether the server acknowledged a plain batch as
// appended now, which nothing the owner learns later can change, and the
// offset after it.
func (r result) written() (offset string, ok bool) {
	o := classify(r.sent(r.a.acked), r.ans, target{})
	return o.offset, !r.a.close && o.kind == acknowledged
}

// send posts one batch under protocol.Retry: what the answer table calls
// retryable (network errors, timeouts, 429, 5xx) is tried again with the
// same epoch, seq and body, so that the server recognises a repeat of a
// request it already applied.
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
		_ = protocol.Sleep(ctx, a.delay)
	}
	var last answer
	mayBeWritten := a.maybeLanded // an earlier launch at this (epoch, seq) may have been written
	to := p.target()
	if ctx.Err() != nil {
		// Close gave up while this request waited its turn: it is not
		// sent, whether or not the transport would honour the ended
		// context (a RoundTripper may write a request whose context has
		// ended, and then its outcome would read as unknown).
		err := fmt.Errorf("append to %s not sent: %w", to.url, context.Cause(ctx))
		return result{a: a, ans: answer{err: err, gaveUp: true, mayBeWritten: mayBeWritten}}
	}
	err := protocol.Retry(ctx, p.cfg.Retry, p.cfg.Client.RefusedPoll, func(n int) protocol.Try {
		if n > 1 {
			p.log.Debug("Retrying append", watermill.LogFields{
				"epoch": a.epoch, "seq": a.seq, "try": n, "cause": fmt.Sprint(last.err),
			})
		}
		// Whether an earlier try may have been applied is part of what
		// the answer to this one means (a duplicate of ours or of others').
		last = p.post(ctx, a)
		o := classify(result{a: a, ans: last, earlier: mayBeWritten}.sent(a.acked), last, to)
		if o.kind != retryable {
			return protocol.Try{}
		}
		mayBeWritten = mayBeWritten || o.mayBeWritten
		return protocol.Try{Err: o.err, Retryable: true, MayBeWritten: o.mayBeWritten, RetryAfter: o.retryAfter}
	})
	if err != nil {
		return result{a: a, ans: answer{err: err, gaveUp: true, mayBeWritten: mayBeWritten}}
	}
	switch {
	case needsHeadCheck(a.sent(a.acked), last):
		last.headClosed = closedOnHead(p.head(ctx))
	case needsTypeCheck(a.sent(a.acked), last):
		last.streamType = typeOnHead(p.head(ctx))
	}
	return result{a: a, ans: last, earlier: mayBeWritten}
}

// head asks the server about the stream, for an answer whose headers do
// not say enough (see answer.headClosed and answer.streamType); status 0
// when it cannot tell.
func (p *Producer) head(ctx context.Context) (int, http.Header) {
	client := p.cfg.Client
	ctx, cancel := client.WithTimeout(ctx)
	defer cancel()
	req, err := client.NewRequest(ctx, http.MethodHead, p.cfg.URL, nil)
	if err != nil {
		return 0, nil
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil
	}
	protocol.DrainClose(resp.Body)
	return resp.StatusCode, resp.Header
}

// post makes one try, bounded by the request timeout.
func (p *Producer) post(parent context.Context, a attempt) answer {
	client := p.cfg.Client
	ctx, cancel := client.WithTimeout(parent)
	defer cancel()
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { a.wrote.done() },
	})
	req, err := client.NewRequest(ctx, http.MethodPost, p.cfg.URL, bytes.NewReader(a.body))
	if err != nil {
		return answer{err: err}
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
		t := protocol.TransportTry(fmt.Errorf("append to %s: %w", protocol.RedactURL(p.cfg.URL), err), written)
		return answer{err: t.Err, retryable: t.Retryable, mayBeWritten: t.MayBeWritten}
	}
	ans := answer{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		ans.body = protocol.ErrorBody(b)
	}
	protocol.DrainClose(resp.Body)
	return ans
}

// target is where a request went: its URL (redacted) for the messages,
// and the client that builds the errors users get (see
// protocol.Client.AnswerError).
type target struct {
	url    string
	client *protocol.Client
}

func (p *Producer) target() target {
	return target{url: protocol.RedactURL(p.cfg.URL), client: p.cfg.Client}
}
