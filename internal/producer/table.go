package producer

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// The answer table: what one answer to an append means, as a pure function
// of what was sent and what came back (PROTOCOL.md §5.2, §5.2.1, §5.3 and
// §4.1). It is the only place that reads a status or a producer header;
// the owner applies its outcomes in sequencer.apply, the request goroutine
// asks it whether to try again.

// outcomeKind is what an answer means for the batch that drew it.
type outcomeKind int

const (
	// acknowledged: the server wrote the batch now (200).
	acknowledged outcomeKind = iota
	// duplicateOfOurs: the server already held this (epoch, seq), written
	// by an earlier try of this very request (204).
	duplicateOfOurs
	// duplicateOfOthers: the server held this (epoch, seq) from another
	// request (an earlier incarnation with the same id and epoch): ours is
	// not in the stream. seq is the highest the server holds.
	duplicateOfOthers
	// gap: the server expects seq (an earlier seq of this epoch) that had
	// not landed when this request arrived.
	gap
	// staleGap: like gap, but the expected seq was acknowledged since the
	// request was sent: the answer is older than what we know.
	staleGap
	// stateLost: the server expects a seq at or below one it had
	// acknowledged before the request was sent: it no longer knows this
	// producer (stream deleted and recreated, in-memory server restarted,
	// TTL expiry, producer state cleanup of §5.2.1).
	stateLost
	// fenced: a newer epoch (seq holds it) owns the producer id (403).
	fenced
	// closedByUs: this request closed the stream, or repeated the one that
	// did (the close was confirmed: see answer.headClosed).
	closedByUs
	// closedByOthers: the stream was closed before, by another request
	// (409 with Stream-Closed: true).
	closedByOthers
	// notFound: the stream does not exist (404) or is gone (410).
	notFound
	// rejected: the server refused the request and applied nothing (400,
	// 413, a 409 of another kind, 405, 501, garbage headers, an unknown
	// status). A 409 for a stream that a HEAD shows with another content
	// type fails with protocol.ErrContentTypeMismatch.
	rejected
	// retryable: this try failed in a way that a repeat may fix (429, 5xx,
	// a network error or timeout); mayBeWritten says if it could have been
	// applied.
	retryable
	// unanswered: the retries ended without an answer; mayBeWritten says
	// if any try could have been applied.
	unanswered
)

var kindNames = [...]string{
	"acknowledged", "duplicate of ours", "duplicate of others", "gap", "stale gap", "state lost",
	"fenced", "closed by us", "closed by others", "not found", "rejected", "retryable", "unanswered",
}

func (k outcomeKind) String() string { return kindNames[k] }

// sent is what the table needs to know of the request and of the state
// it was sent in.
type sent struct {
	epoch, seq int64
	// contentType is the request's Content-Type.
	contentType string
	close       bool // Stream-Closed: true
	final       bool // with close: the request carries a final message
	// earlier: an earlier try of this very request may have been applied.
	earlier bool
	// ackedAtSend: the highest seq of this epoch acknowledged before the
	// request was sent (-1 for none); the server held it by then.
	ackedAtSend int64
	// ackedNow: the highest seq of this epoch acknowledged so far.
	ackedNow int64
}

// answer is what came back for one try, or how the retries ended.
type answer struct {
	status int
	header http.Header
	body   string
	// err: no answer. With gaveUp, the retries ended (see protocol.Retry);
	// without, one try failed in transport.
	err    error
	gaveUp bool
	// mayBeWritten: with err, the request (any try of it, when gaveUp) may
	// have reached the server.
	mayBeWritten bool
	// retryable: with err and not gaveUp, the transport error may pass.
	retryable bool
	// headClosed is, for a 204 to a close, what a HEAD said of the stream
	// afterwards (nil when not asked or not known). The reference server
	// echoes Stream-Closed: true on a duplicate 204 to a close whether or
	// not the stream is closed, so the 204's header proves nothing.
	headClosed *bool
	// streamType is, for a 409 that says neither closed nor a sequence
	// gap, the content type a HEAD found on the stream afterwards (nil when
	// not asked or not known). PROTOCOL.md §5.2 answers a content type
	// mismatch with a bare 409, and servers word its body differently
	// (Node "Content-type mismatch", Caddy "content type mismatch"), so
	// only the stream's own type can tell.
	streamType *string
}

// outcome is the table's verdict.
type outcome struct {
	kind outcomeKind
	// seq: expected seq (gap, staleGap, stateLost), the server's highest
	// seq (duplicateOfOthers), the server's epoch (fenced).
	seq          int64
	offset       string // Stream-Next-Offset, when the server sent one
	mayBeWritten bool   // retryable, unanswered
	retryAfter   time.Duration
	// err is what the batch fails with, if it fails. After an earlier try
	// of the request that may have been applied it matches
	// protocol.ErrOutcomeUnknown, whatever this answer says: that try may
	// be in the stream (see mayBeOurs).
	err error
	// streamErr is what the answer says of the stream for every later
	// batch (closedByOthers, fenced, notFound): err without the earlier
	// try's uncertainty, which is this batch's alone.
	streamErr error
}

// classify is the answer table.
func classify(s sent, a answer, to target) outcome {
	return mayBeOurs(s, a, classifyAnswer(s, a, to))
}

// mayBeOurs: a final answer that fails the batch says "not written" only
// of this try. When an earlier try of the request (or an earlier launch at
// its seq) may have been applied, the batch may be in the stream all the
// same: its answer was lost, and then another writer closed the stream, a
// newer epoch fenced this producer, the stream was deleted or recreated,
// or the repeat drew a refusal of its own.
func mayBeOurs(s sent, a answer, o outcome) outcome {
	switch o.kind {
	case closedByOthers, fenced, notFound, rejected:
		o.streamErr = o.err
		if !s.earlier {
			return o
		}
	case unanswered:
		// The retries ended: a.mayBeWritten covers every try and every
		// earlier launch at this seq.
		if !a.mayBeWritten {
			return o
		}
	default:
		return o
	}
	if o.err != nil && !errors.Is(o.err, protocol.ErrOutcomeUnknown) {
		o.err = fmt.Errorf("%w: an earlier try of this request may have been written: %w", protocol.ErrOutcomeUnknown, o.err)
	}
	return o
}

// classifyAnswer reads one answer by its status; the longer readings are
// the functions below it.
func classifyAnswer(s sent, a answer, to target) outcome {
	if a.err != nil {
		return classifyUnanswered(a)
	}
	h := a.header
	o := outcome{offset: h.Get(protocol.HeaderNextOffset)}
	closed := isTrue(h.Get(protocol.HeaderClosed))
	switch {
	case a.status == http.StatusOK || a.status == http.StatusCreated:
		return classifyWritten(s, a, o, to.url, closed)

	case a.status == http.StatusNoContent:
		return classifyDuplicate(s, a, o, to.url)

	case a.status == http.StatusConflict && closed:
		o.kind = closedByOthers
		o.err = fmt.Errorf("%w: %s", protocol.ErrStreamClosed, to.url)

	case a.status == http.StatusConflict && h.Get(protocol.HeaderExpectedSeq) != "":
		return classifyExpectedSeq(s, a, o, to)

	case a.status == http.StatusConflict && carriesBody(s) && a.streamType != nil && !protocol.SameContentType(*a.streamType, s.contentType):
		// §5.2: a 409 that is neither a closed stream nor a sequence gap,
		// for a stream whose type is not the one sent: the stream was
		// deleted and created again with another content type.
		o.kind = rejected
		o.err = fmt.Errorf("%w: %s is now %q, the publisher writes %q (the stream was deleted and created again?)",
			protocol.ErrContentTypeMismatch, to.url, *a.streamType, s.contentType)

	case a.status == http.StatusForbidden && h.Get(protocol.HeaderProducerEpoch) != "":
		return classifyFenced(s, a, o, to)

	case a.status == http.StatusNotFound:
		o.kind = notFound
		o.err = fmt.Errorf("%w: %s", protocol.ErrStreamNotFound, to.url)

	case a.status == http.StatusGone:
		o.kind = notFound
		o.err = fmt.Errorf("%w: %s", protocol.ErrStreamGone, to.url)

	case protocol.RetryableStatus(a.status):
		o.kind, o.err = retryable, answerError(a, to)
		// A 429 is refused before anything is applied; a 5xx may come
		// from a proxy after the server wrote.
		o.mayBeWritten = a.status >= 500
		o.retryAfter = protocol.RetryAfter(h, maxRetryAfter)

	default:
		o.kind, o.err = rejected, answerError(a, to)
	}
	return o
}

// classifyWritten reads a 200 or 201: the batch written, or the stream
// closed by it.
func classifyWritten(s sent, a answer, o outcome, url string, closed bool) outcome {
	switch {
	case o.offset == "":
		// §5.2: a success carries the new tail. One without it is no
		// Durable Streams endpoint's (a web server or a proxy's default
		// route answering 200 to anything): nothing reached a stream.
		o.kind, o.err = rejected, notStreamEndpoint(a.status, url)
	case s.close && closed:
		o.kind = closedByUs
	default:
		// A close that the server answers 200 without Stream-Closed did
		// not close: the final message is written, the stream is open.
		o.kind = acknowledged
	}
	return o
}

// classifyUnanswered reads a request that drew no answer: given up on,
// retryable, or failed before it was written.
func classifyUnanswered(a answer) outcome {
	if a.gaveUp {
		return outcome{kind: unanswered, mayBeWritten: a.mayBeWritten, err: a.err}
	}
	if a.retryable || a.mayBeWritten {
		return outcome{kind: retryable, mayBeWritten: a.mayBeWritten, err: a.err}
	}
	// A failure before the request was written that would fail again
	// (a refused certificate, a HeaderFunc error): nothing applied.
	return outcome{kind: rejected, err: a.err}
}

// answerError is the error of an answer the table reads as a refusal.
func answerError(a answer, to target) error {
	return to.client.AnswerError(http.MethodPost, to.url, a.status, a.body, protocol.RetryAfter(a.header, maxRetryAfter))
}

// classifyExpectedSeq reads a 409 with Stream-Expected-Seq: how far the
// server is from the seq sent.
func classifyExpectedSeq(s sent, a answer, o outcome, to target) outcome {
	expected, ok := headerInt(a.header, protocol.HeaderExpectedSeq)
	switch {
	case !ok || expected > s.seq:
		// Unreadable, or a claim that we are behind what we sent,
		// which §5.2.1 answers with 204: not an answer to trust.
		o.kind, o.err = rejected, answerError(a, to)
	case expected <= s.ackedAtSend:
		o.kind, o.seq = stateLost, expected
	case expected <= s.ackedNow:
		o.kind, o.seq = staleGap, expected
	default:
		o.kind, o.seq = gap, expected
	}
	return o
}

// classifyFenced reads a 403 with Producer-Epoch: a newer epoch holds the
// stream.
func classifyFenced(s sent, a answer, o outcome, to target) outcome {
	server, ok := headerInt(a.header, protocol.HeaderProducerEpoch)
	if !ok {
		o.kind, o.err = rejected, answerError(a, to)
		return o
	}
	o.kind, o.seq = fenced, server
	o.err = to.client.StaleEpochError(server, s.epoch)
	return o
}

// classifyDuplicate reads a 204: the server held this (epoch, seq) already.
func classifyDuplicate(s sent, a answer, o outcome, url string) outcome {
	h := a.header
	if s.close {
		closed := isTrue(h.Get(protocol.HeaderClosed))
		if a.headClosed != nil {
			closed = *a.headClosed
		}
		// A fresh close-only request is answered 204 as well, so for a
		// close-only request a closed stream is success whoever's request
		// closed it. A final message is ours only if an earlier try of
		// ours may have been the one written.
		if closed && (!s.final || s.earlier) {
			o.kind = closedByUs
			return o
		}
		o.kind = duplicateOfOthers
		o.seq = s.seq
		if last, ok := headerInt(h, protocol.HeaderProducerSeq); ok {
			o.seq = max(last, s.seq)
		}
		return o
	}
	if s.earlier {
		o.kind = duplicateOfOurs
		return o
	}
	last, ok := headerInt(h, protocol.HeaderProducerSeq)
	if !ok && o.offset == "" {
		// Neither producer state nor the new tail (§5.2): no Durable
		// Streams endpoint answers an append so.
		o.kind, o.err = rejected, notStreamEndpoint(a.status, url)
		return o
	}
	if !ok {
		// No producer state in the answer: a server that does not do
		// idempotent producers answers a plain append 204 (§5.2).
		o.kind = acknowledged
		return o
	}
	// The first try of this request, yet the server held its seq: someone
	// else wrote it.
	o.kind, o.seq = duplicateOfOthers, max(last, s.seq)
	return o
}

// notStreamEndpoint fails a success answer that no Durable Streams
// endpoint gives.
func notStreamEndpoint(status int, url string) error {
	return fmt.Errorf("%w: POST %s answered %d %s without %s", protocol.ErrNotStreamEndpoint, url, status,
		http.StatusText(status), protocol.HeaderNextOffset)
}

// needsHeadCheck: a 204 to a close proves nothing by its headers (see
// answer.headClosed); a HEAD must say whether the stream is closed.
func needsHeadCheck(s sent, a answer) bool {
	return s.close && a.err == nil && a.status == http.StatusNoContent
}

// needsTypeCheck: a 409 that says neither closed nor a sequence gap may be a
// content type mismatch (§5.2), which only the stream's type can show (see
// answer.streamType).
func needsTypeCheck(s sent, a answer) bool {
	return carriesBody(s) && a.err == nil && a.status == http.StatusConflict && !isTrue(a.header.Get(protocol.HeaderClosed)) &&
		a.header.Get(protocol.HeaderExpectedSeq) == ""
}

// carriesBody: the request has data, so its Content-Type counts (§5.2: a
// close-only request is never refused for its Content-Type).
func carriesBody(s sent) bool { return !s.close || s.final }

// typeOnHead reads the HEAD that checks such a 409: the stream's content
// type, or nil when the answer does not say.
func typeOnHead(status int, h http.Header) *string {
	if status != http.StatusOK || h.Get("Content-Type") == "" {
		return nil
	}
	t := strings.TrimSpace(h.Get("Content-Type"))
	return &t
}

// closedOnHead reads the HEAD that checks a 204 to a close: whether the
// stream is closed, or nil when the answer does not say.
func closedOnHead(status int, h http.Header) *bool {
	if status != http.StatusOK {
		return nil
	}
	closed := isTrue(h.Get(protocol.HeaderClosed))
	return &closed
}

func isTrue(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "true") }

func headerInt(h http.Header, name string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(h.Get(name)), 10, 64)
	return n, err == nil && n >= 0 && n <= protocol.MaxInteger
}
