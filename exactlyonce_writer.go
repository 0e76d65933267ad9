package durablestreams

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/durablestreams/watermill-durablestreams/internal/group"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// eoWriter writes the exactly-once outputs of one input stream (of one
// group) to one output stream, one request at a time: an idempotent
// producer whose id names (group, input stream, output stream) and whose
// epoch is the input lease's epoch, so that the server refuses (403) a
// former owner once a newer one wrote.
type eoWriter struct {
	mu sync.Mutex
	// p is the Publisher of the write in progress (client, marshaler).
	p          *Publisher
	topic      string // the output stream's name
	url        string
	producerID string
	writerID   string // (group, input stream): what the claim records
	ready      bool   // the stream exists and the claim is ours
	epoch      int64  // the epoch of seq; -1 before the first write
	seq        int64  // the next Producer-Seq
}

// eoWriters keeps the writers of the process, shared by every Publisher:
// two Publishers writing for one lease (a Router's and an EventBus's) must
// share its Producer-Seq, or the second one's first request would be
// answered 204 "duplicate" and its outputs dropped. One lease epoch is
// held by one process, so the process is the scope that suffices.
var eoWriters = struct {
	mu sync.Mutex
	m  map[string]*eoWriter
}{m: make(map[string]*eoWriter)}

func eoWriterFor(src *eoSource, stream, streamURL string) *eoWriter {
	eoWriters.mu.Lock()
	defer eoWriters.mu.Unlock()
	// Escaped, so that no group and stream names run into each other:
	// group "a|b" of stream "c" is not group "a" of stream "b|c".
	writerID := url.PathEscape(src.group) + "|" + url.PathEscape(src.stream)
	key := streamURL + "\x00" + writerID
	if w := eoWriters.m[key]; w != nil {
		return w
	}
	w := &eoWriter{topic: stream, url: streamURL, writerID: writerID, epoch: -1,
		producerID: "eo|" + writerID + "|" + url.PathEscape(stream)}
	eoWriters.m[key] = w
	return w
}

// write appends body, the outputs of input t from index first on, in one
// request. nil means the outputs are durable: written now, or by an
// earlier delivery of the same input.
func (w *eoWriter) write(ctx context.Context, p *Publisher, t *eoTxn, first int64, body []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.p = p
	defer func() { w.p = nil }()
	if !w.ready {
		if err := w.prepare(ctx); err != nil {
			return err
		}
		w.ready = true
	}
	lease := t.src.lease
	switch epoch := lease.Epoch(); {
	case epoch > w.epoch:
		w.epoch, w.seq = epoch, 0 // a new epoch starts at Producer-Seq 0
	case epoch < w.epoch:
		return w.fenced(t, "a newer lease of this process wrote to the output stream", nil)
	}
	seq, err := streamSeq(t.ordinal, first)
	if err != nil {
		return err
	}
	for resync := 0; ; resync++ {
		if !lease.Holds() {
			return w.fenced(t, "the lease on the input stream is no longer valid", nil)
		}
		a, err := w.post(ctx, body, seq)
		if err != nil {
			return err
		}
		if resync < 2 && w.resync(a) {
			continue
		}
		return w.settle(t, a, seq)
	}
}

// resync adopts the server's Producer-Seq when an answer shows that
// nothing was written because ours differs, and tells to send again.
func (w *eoWriter) resync(a eoAnswer) bool {
	switch {
	case a.kind == eoSeqGap && a.expected >= 0 && a.expected < w.seq:
		// The server forgot this producer (an in-memory server
		// restarted): start where it says.
		w.seq = a.expected
		return true
	case a.kind == eoDuplicate && a.last > w.seq:
		// Not a retry of ours: the epoch went further than this writer
		// knows (a second writer state for the same lease). Nothing of
		// this request was written; go on from the server's seq, where
		// Stream-Seq decides.
		w.seq = a.last + 1
		return true
	}
	return false
}

// settle turns an answer into write's result.
func (w *eoWriter) settle(t *eoTxn, a eoAnswer, seq string) error {
	fields := watermill.LogFields{"topic": w.topic, "stream_url": protocol.RedactURL(w.url), "stream_seq": seq, "outcome": a.kind.String()}
	switch a.kind {
	case eoWritten, eoDuplicate:
		w.seq++
		return nil
	case eoAlreadyWritten:
		// Producer state was not committed: w.seq is reused.
		w.p.logger.Debug("Outputs of a redelivered input were already written; not writing them again", fields)
		return nil
	case eoFenced:
		return w.fenced(t, "the server refused the write (403): a newer owner of the input stream wrote to the output stream",
			&StaleEpochError{ServerEpoch: a.epoch, Epoch: w.epoch})
	case eoSeqGap:
		return fmt.Errorf("%w: the server expects Producer-Seq %d, this writer is at %d (outputs of %q not written)", ErrNotExactlyOnce, a.expected, w.seq, t.src.stream)
	case eoClosed:
		return ErrStreamClosed
	case eoTypeMismatch:
		return ErrContentTypeMismatch
	case eoNotFound:
		return ErrStreamNotFound
	case eoNotEndpoint:
		return ErrNotStreamEndpoint
	}
	return fmt.Errorf("%w: unexpected answer (%s)", ErrNotPublished, a.kind)
}

func (w *eoWriter) fenced(t *eoTxn, reason string, cause error) error {
	err := &group.FencedError{Stream: t.src.stream, Epoch: t.src.lease.Epoch(), Reason: reason}
	if cause != nil {
		return fmt.Errorf("%w: %w", err, cause)
	}
	return err
}

// post sends the request, retrying network failures, 429 and 5xx with the
// same (epoch, seq, Stream-Seq): the server answers 204 to a retry of a
// request it applied. An error that may hide an applied request matches
// ErrOutcomeUnknown (the input is nacked; its redelivery sends the same
// numbers again and settles it).
func (w *eoWriter) post(ctx context.Context, body []byte, seq string) (eoAnswer, error) {
	var a eoAnswer
	err := protocol.Retry(ctx, w.p.client.Retry, func(int) protocol.Try {
		var t protocol.Try
		a, t = w.try(ctx, body, seq)
		return t
	})
	return a, err
}

func (w *eoWriter) try(ctx context.Context, body []byte, seq string) (eoAnswer, protocol.Try) {
	reqCtx, cancel := w.p.client.WithTimeout(ctx)
	defer cancel()
	req, err := w.p.client.NewRequest(reqCtx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return eoAnswer{}, protocol.Try{Err: err}
	}
	req.Header.Set("Content-Type", w.p.config.Marshaler.ContentType())
	req.Header.Set("Producer-Id", w.producerID)
	req.Header.Set("Producer-Epoch", strconv.FormatInt(w.epoch, 10))
	req.Header.Set("Producer-Seq", strconv.FormatInt(w.seq, 10))
	req.Header.Set("Stream-Seq", seq)
	resp, written, err := w.p.client.Send(req)
	if err != nil {
		return eoAnswer{}, protocol.TransportTry(err, written)
	}
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	protocol.DrainClose(resp.Body)
	a := classifyEO(resp.StatusCode, resp.Header, string(text))
	if a.kind == eoRetry || a.kind == eoFailed {
		herr := &protocol.HTTPError{Method: http.MethodPost, URL: protocol.RedactURL(w.url), StatusCode: resp.StatusCode,
			Body: string(bytes.TrimSpace(text)), RetryAfter: protocol.RetryAfter(resp.Header, w.p.client.Retry.MaxBackoff)}
		return a, protocol.StatusTry(herr)
	}
	return a, protocol.Try{}
}
