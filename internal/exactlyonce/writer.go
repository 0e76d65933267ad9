package exactlyonce

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

// Lease is what outputs need of a group lease (a *group.Lease): its
// epoch, a fencing token the server enforces, and whether it still holds
// (a revoked lease holds until it is released: the message in hand at a
// handover may still write).
type Lease interface {
	Epoch() int64
	Holds() bool
}

// Input is the input whose outputs a write carries: the stream it was
// read from, its ordinal there (what numbers its outputs) and the lease
// it was delivered under (who may write them).
type Input struct {
	Stream  string
	Ordinal int64
	Lease   Lease
}

// Env is what a write needs of the Publisher that makes it: the client
// that sends the requests, the logger, and the content type of the
// output streams. It is passed per write, not kept: two Publishers may
// write through one Writer (see writers).
type Env struct {
	Client      *protocol.Client
	Logger      watermill.LoggerAdapter
	ContentType string
}

// Writer writes the exactly-once outputs of one input stream (of one
// group) to one output stream, one request at a time: an idempotent
// producer whose id names (group, input stream, output stream) and whose
// epoch is the input lease's epoch, so that the server refuses (403) a
// former owner once a newer one wrote.
type Writer struct {
	mu sync.Mutex
	// env is that of the write in progress.
	env        Env
	topic      string // the output stream's name
	url        string
	producerID string
	writerID   string // (group, input stream): what the claim records
	ready      bool   // the stream exists and the claim is ours
	epoch      int64  // the epoch of seq; -1 before the first write
	seq        int64  // the next Producer-Seq
}

// writers keeps the writers of the process, shared by every Publisher:
// two Publishers writing for one lease (a Router's and an EventBus's) must
// share its Producer-Seq, or the second one's first request would be
// answered 204 "duplicate" and its outputs dropped. One lease epoch is
// held by one process, so the process is the scope that suffices.
var writers = struct {
	mu sync.Mutex
	m  map[string]*Writer
}{m: make(map[string]*Writer)}

// WriterFor is the process's writer of the outputs of group's input
// stream inputStream to the output stream named stream at streamURL.
func WriterFor(group, inputStream, stream, streamURL string) *Writer {
	writers.mu.Lock()
	defer writers.mu.Unlock()
	// Escaped, so that no group and stream names run into each other:
	// group "a|b" of stream "c" is not group "a" of stream "b|c".
	writerID := url.PathEscape(group) + "|" + url.PathEscape(inputStream)
	key := streamURL + "\x00" + writerID
	if w := writers.m[key]; w != nil {
		return w
	}
	w := &Writer{topic: stream, url: streamURL, writerID: writerID, epoch: -1,
		producerID: "eo|" + writerID + "|" + url.PathEscape(stream)}
	writers.m[key] = w
	return w
}

// ForgetWriters drops the writers of the process, as a new process starts
// without them: tests use it to stand for a restart.
func ForgetWriters() {
	writers.mu.Lock()
	defer writers.mu.Unlock()
	clear(writers.m)
}

// Write appends body, the outputs of input in from index first on, in one
// request. nil means the outputs are durable: written now, or by an
// earlier delivery of the same input. Errors from the protocol are
// returned as they are: the caller gives them their public form.
func (w *Writer) Write(ctx context.Context, env Env, in Input, first int64, body []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.env = env
	defer func() { w.env = Env{} }()
	if !w.ready {
		if err := w.prepare(ctx); err != nil {
			return err
		}
		w.ready = true
	}
	lease := in.Lease
	switch epoch := lease.Epoch(); {
	case epoch > w.epoch:
		w.epoch, w.seq = epoch, 0 // a new epoch starts at Producer-Seq 0
	case epoch < w.epoch:
		return w.fenced(in, "a newer lease of this process wrote to the output stream", nil)
	}
	seq, err := streamSeq(in.Ordinal, first)
	if err != nil {
		return err
	}
	for resync := 0; ; resync++ {
		if !lease.Holds() {
			return w.fenced(in, "the lease on the input stream is no longer valid", nil)
		}
		a, err := w.post(ctx, body, seq)
		if err != nil {
			return err
		}
		if resync < 2 && w.resync(a) {
			continue
		}
		return w.settle(in, a, seq)
	}
}

// resync adopts the server's Producer-Seq when an answer shows that
// nothing was written because ours differs, and tells to send again.
func (w *Writer) resync(a eoAnswer) bool {
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
func (w *Writer) settle(in Input, a eoAnswer, seq string) error {
	fields := watermill.LogFields{"topic": w.topic, "stream_url": protocol.RedactURL(w.url), "stream_seq": seq, "outcome": a.kind.String()}
	switch a.kind {
	case eoWritten, eoDuplicate:
		w.seq++
		return nil
	case eoAlreadyWritten:
		// Producer state was not committed: w.seq is reused.
		w.env.Logger.Debug("Outputs of a redelivered input were already written; not writing them again", fields)
		return nil
	case eoFenced:
		return w.fenced(in, "the server refused the write (403): a newer owner of the input stream wrote to the output stream",
			w.env.Client.StaleEpochError(a.epoch, w.epoch))
	case eoSeqGap:
		return fmt.Errorf("%w: the server expects Producer-Seq %d, this writer is at %d (outputs of %q not written)", ErrNotExactlyOnce, a.expected, w.seq, in.Stream)
	case eoClosed:
		return protocol.ErrStreamClosed
	case eoTypeMismatch:
		return protocol.ErrContentTypeMismatch
	case eoNotFound:
		return protocol.ErrStreamNotFound
	case eoNotEndpoint:
		return protocol.ErrNotStreamEndpoint
	}
	return fmt.Errorf("%w: unexpected answer (%s)", protocol.ErrNotPublished, a.kind)
}

func (w *Writer) fenced(in Input, reason string, cause error) error {
	err := &group.FencedError{Stream: in.Stream, Epoch: in.Lease.Epoch(), Reason: reason}
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
func (w *Writer) post(ctx context.Context, body []byte, seq string) (eoAnswer, error) {
	var a eoAnswer
	err := protocol.Retry(ctx, w.env.Client.Retry, w.env.Client.RefusedPoll, func(int) protocol.Try {
		var t protocol.Try
		a, t = w.try(ctx, body, seq)
		return t
	})
	return a, err
}

func (w *Writer) try(ctx context.Context, body []byte, seq string) (eoAnswer, protocol.Try) {
	reqCtx, cancel := w.env.Client.WithTimeout(ctx)
	defer cancel()
	req, err := w.env.Client.NewRequest(reqCtx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return eoAnswer{}, protocol.Try{Err: err}
	}
	req.Header.Set("Content-Type", w.env.ContentType)
	req.Header.Set("Producer-Id", w.producerID)
	req.Header.Set("Producer-Epoch", strconv.FormatInt(w.epoch, 10))
	req.Header.Set("Producer-Seq", strconv.FormatInt(w.seq, 10))
	req.Header.Set("Stream-Seq", seq)
	resp, written, err := w.env.Client.Send(req)
	if err != nil {
		return eoAnswer{}, protocol.TransportTry(err, written)
	}
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	protocol.DrainClose(resp.Body)
	a := classifyEO(resp.StatusCode, resp.Header, string(text))
	if a.kind == eoRetry || a.kind == eoFailed {
		return a, w.env.Client.StatusTry(http.MethodPost, protocol.RedactURL(w.url), resp.StatusCode,
			string(bytes.TrimSpace(text)), protocol.RetryAfter(resp.Header, w.env.Client.Retry.MaxBackoff))
	}
	return a, protocol.Try{}
}
