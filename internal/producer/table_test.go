package producer

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// TestAnswerTable has a row for every answer PROTOCOL.md §5.2, §5.2.1,
// §5.3 and §4.1 define to an append with producer headers, and for every
// transport outcome. hdr lists header name/value pairs.
func TestAnswerTable(t *testing.T) {
	// A request with seq 5 in epoch 3; seq 2 was acknowledged before it
	// was sent, seq 3 since.
	plain := sent{epoch: 3, seq: 5, ackedAtSend: 2, ackedNow: 3, contentType: "application/json"}
	retried := plain
	retried.earlier = true
	closeOnly := plain
	closeOnly.close = true
	closeFinal := closeOnly
	closeFinal.final = true
	closeFinalRetried := closeFinal
	closeFinalRetried.earlier = true
	yes, no := true, false
	textPlain, jsonWithCharset := "text/plain", "application/json; charset=utf-8"
	errNet := errors.New("connection reset")

	type row struct {
		name   string
		sent   sent
		ans    answer
		kind   outcomeKind
		seq    int64 // checked for kinds that carry one
		mayBe  bool
		errIs  error
		offset string
		// streamIs: what later batches fail with (outcome.streamErr).
		streamIs error
		// isAnswer: the error is the answer's error (AnswerError's, plain
		// here: the table's target has no Client); errHas: its text
		// holds these.
		isAnswer bool
		errHas   []string
	}
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	const off = "0000_0042"
	rows := []row{
		// §5.2.1: 200 new data.
		{name: "200 written", sent: plain, ans: answer{status: 200, header: hdr("Stream-Next-Offset", off, "Producer-Seq", "5")}, kind: acknowledged, offset: off},
		{name: "200 after a lost try", sent: retried, ans: answer{status: 200, header: hdr("Stream-Next-Offset", off, "Producer-Seq", "5")}, kind: acknowledged, offset: off},
		// §5.2: a success carries Stream-Next-Offset; a web server's 200
		// to anything (Caddy outside its stream root) does not.
		{name: "200 without Stream-Next-Offset: no stream endpoint", sent: plain, ans: answer{status: 200}, kind: rejected, errIs: protocol.ErrNotStreamEndpoint, errHas: []string{"200 OK without Stream-Next-Offset"}},
		{name: "201 without Stream-Next-Offset: no stream endpoint", sent: plain, ans: answer{status: 201, header: hdr("Producer-Seq", "5")}, kind: rejected, errIs: protocol.ErrNotStreamEndpoint},
		{name: "200 without Stream-Next-Offset after a lost try", sent: retried, ans: answer{status: 200}, kind: rejected, errIs: protocol.ErrOutcomeUnknown, streamIs: protocol.ErrNotStreamEndpoint},
		// §5.2.1: 204 duplicate; Caddy adds Stream-Next-Offset, Node does not.
		{name: "204 duplicate of an earlier try", sent: retried, ans: answer{status: 204, header: hdr("Producer-Seq", "5")}, kind: duplicateOfOurs},
		{name: "204 duplicate of an earlier try, with offset (Caddy)", sent: retried, ans: answer{status: 204, header: hdr("Producer-Seq", "5", "Stream-Next-Offset", off)}, kind: duplicateOfOurs, offset: off},
		{name: "204 to a first try: another request's seq", sent: plain, ans: answer{status: 204, header: hdr("Producer-Seq", "7")}, kind: duplicateOfOthers, seq: 7},
		{name: "204 to a first try, with offset (Caddy)", sent: plain, ans: answer{status: 204, header: hdr("Producer-Seq", "5", "Stream-Next-Offset", off)}, kind: duplicateOfOthers, seq: 5},
		{name: "204 without producer state (§5.2 plain append success)", sent: plain, ans: answer{status: 204, header: hdr("Stream-Next-Offset", off)}, kind: acknowledged, offset: off},
		{name: "204 without producer state or offset: no stream endpoint", sent: plain, ans: answer{status: 204}, kind: rejected, errIs: protocol.ErrNotStreamEndpoint},
		// §5.2.1: 409 sequence gap.
		{name: "409 gap: an earlier batch has not landed", sent: plain, ans: answer{status: 409, header: hdr("Producer-Expected-Seq", "4", "Producer-Received-Seq", "5")}, kind: gap, seq: 4},
		{name: "409 stale gap: expected seq acknowledged since", sent: plain, ans: answer{status: 409, header: hdr("Producer-Expected-Seq", "3", "Producer-Received-Seq", "5")}, kind: staleGap, seq: 3},
		{name: "409 expected seq acknowledged before sending: state lost", sent: plain, ans: answer{status: 409, header: hdr("Producer-Expected-Seq", "2", "Producer-Received-Seq", "5")}, kind: stateLost, seq: 2},
		{name: "409 expected seq 0: state lost", sent: plain, ans: answer{status: 409, header: hdr("Producer-Expected-Seq", "0", "Producer-Received-Seq", "5")}, kind: stateLost, seq: 0},
		{name: "409 expected 0 with nothing acknowledged: gap", sent: sent{epoch: 3, seq: 2, ackedAtSend: -1, ackedNow: -1}, ans: answer{status: 409, header: hdr("Producer-Expected-Seq", "0")}, kind: gap, seq: 0},
		{name: "409 expected seq above the one sent", sent: plain, ans: answer{status: 409, header: hdr("Producer-Expected-Seq", "9")}, kind: rejected},
		{name: "409 garbage expected seq", sent: plain, ans: answer{status: 409, header: hdr("Producer-Expected-Seq", "-7x")}, kind: rejected},
		{name: "409 expected seq beyond 2^53-1", sent: plain, ans: answer{status: 409, header: hdr("Producer-Expected-Seq", "9007199254740992")}, kind: rejected},
		// §5.2 / §4.1: closed stream.
		{name: "409 stream closed", sent: plain, ans: answer{status: 409, header: hdr("Stream-Closed", "true", "Stream-Next-Offset", off)}, kind: closedByOthers, errIs: protocol.ErrStreamClosed, offset: off},
		{name: "409 stream closed, header case-insensitive", sent: plain, ans: answer{status: 409, header: hdr("Stream-Closed", "TRUE")}, kind: closedByOthers, errIs: protocol.ErrStreamClosed},
		{name: "409 Stream-Closed not true is absent", sent: plain, ans: answer{status: 409, header: hdr("Stream-Closed", "yes")}, kind: rejected},
		{name: "409 closed takes precedence over a gap", sent: plain, ans: answer{status: 409, header: hdr("Stream-Closed", "true", "Producer-Expected-Seq", "4")}, kind: closedByOthers, errIs: protocol.ErrStreamClosed},
		// §5.2: a content type mismatch is a bare 409; a HEAD tells it (the
		// body's wording differs between servers).
		{name: "409 bare, type unknown", sent: plain, ans: answer{status: 409}, kind: rejected, isAnswer: true},
		{name: "409 content type mismatch (HEAD: another type)", sent: plain, ans: answer{status: 409, body: "Content-type mismatch", streamType: &textPlain}, kind: rejected, errIs: protocol.ErrContentTypeMismatch, errHas: []string{`"text/plain"`, `"application/json"`}},
		{name: "409 content type mismatch, Caddy's wording", sent: plain, ans: answer{status: 409, body: "content type mismatch", streamType: &textPlain}, kind: rejected, errIs: protocol.ErrContentTypeMismatch},
		{name: "409 bare to a close-only request: not about the type", sent: closeOnly, ans: answer{status: 409, streamType: &textPlain}, kind: rejected, isAnswer: true},
		{name: "409 bare, HEAD: same media type", sent: plain, ans: answer{status: 409, streamType: &jsonWithCharset}, kind: rejected, isAnswer: true},
		{name: "409 to a close: closed by another request", sent: closeOnly, ans: answer{status: 409, header: hdr("Stream-Closed", "true", "Stream-Next-Offset", off)}, kind: closedByOthers, offset: off},
		// §5.3 and §5.2.1 "Stream Closure with Idempotent Producers".
		{name: "200 close with final message", sent: closeFinal, ans: answer{status: 200, header: hdr("Stream-Closed", "true", "Stream-Next-Offset", off)}, kind: closedByUs, offset: off},
		{name: "200 to a close without Stream-Closed", sent: closeFinal, ans: answer{status: 200, header: hdr("Stream-Next-Offset", off)}, kind: acknowledged, offset: off},
		{name: "200 to a close without Stream-Closed or offset: no stream endpoint", sent: closeFinal, ans: answer{status: 200}, kind: rejected, errIs: protocol.ErrNotStreamEndpoint},
		{name: "204 close-only, confirmed closed", sent: closeOnly, ans: answer{status: 204, header: hdr("Stream-Closed", "true", "Producer-Seq", "5"), headClosed: &yes}, kind: closedByUs},
		{name: "204 close-only, HEAD unknown, header says closed", sent: closeOnly, ans: answer{status: 204, header: hdr("Stream-Closed", "true")}, kind: closedByUs},
		{name: "204 close-only echoing Stream-Closed, stream open (Node quirk)", sent: closeOnly, ans: answer{status: 204, header: hdr("Stream-Closed", "true", "Producer-Seq", "5"), headClosed: &no}, kind: duplicateOfOthers, seq: 5},
		{name: "204 close without Stream-Closed: another request's seq", sent: closeOnly, ans: answer{status: 204, header: hdr("Producer-Seq", "6")}, kind: duplicateOfOthers, seq: 6},
		{name: "204 close with final message on a first try", sent: closeFinal, ans: answer{status: 204, header: hdr("Stream-Closed", "true"), headClosed: &yes}, kind: duplicateOfOthers, seq: 5},
		{name: "204 close with final message after a lost try", sent: closeFinalRetried, ans: answer{status: 204, header: hdr("Stream-Closed", "true"), headClosed: &yes}, kind: closedByUs},
		// §5.2.1: 403 fenced.
		{name: "403 fenced", sent: plain, ans: answer{status: 403, header: hdr("Producer-Epoch", "9")}, kind: fenced, seq: 9, errIs: protocol.ErrStaleEpoch},
		{name: "403 garbage epoch", sent: plain, ans: answer{status: 403, header: hdr("Producer-Epoch", "99999999999999999999999")}, kind: rejected},
		{name: "403 without epoch (auth)", sent: plain, ans: answer{status: 403}, kind: rejected},
		// §5.2 other codes.
		{name: "404 not found", sent: plain, ans: answer{status: 404}, kind: notFound, errIs: protocol.ErrStreamNotFound},
		{name: "410 gone", sent: plain, ans: answer{status: 410}, kind: notFound, errIs: protocol.ErrStreamGone},
		{name: "400 bad request", sent: plain, ans: answer{status: 400}, kind: rejected},
		{name: "405 not allowed", sent: plain, ans: answer{status: 405}, kind: rejected},
		{name: "413 too large", sent: plain, ans: answer{status: 413}, kind: rejected},
		{name: "501 not implemented", sent: plain, ans: answer{status: 501}, kind: rejected},
		{name: "299 a status no server sends", sent: plain, ans: answer{status: 299}, kind: rejected},
		{name: "429 rate limited: not applied", sent: plain, ans: answer{status: 429, header: hdr("Retry-After", "1")}, kind: retryable, mayBe: false},
		{name: "500", sent: plain, ans: answer{status: 500}, kind: retryable, mayBe: true},
		{name: "503", sent: plain, ans: answer{status: 503}, kind: retryable, mayBe: true},
		// A final answer after an earlier try that may have been applied:
		// that try may be in the stream, whatever this answer says.
		{name: "409 stream closed after a lost try", sent: retried, ans: answer{status: 409, header: hdr("Stream-Closed", "true")}, kind: closedByOthers, errIs: protocol.ErrOutcomeUnknown, streamIs: protocol.ErrStreamClosed},
		{name: "403 fenced after a lost try", sent: retried, ans: answer{status: 403, header: hdr("Producer-Epoch", "9")}, kind: fenced, seq: 9, errIs: protocol.ErrOutcomeUnknown, streamIs: protocol.ErrStaleEpoch},
		{name: "404 after a lost try", sent: retried, ans: answer{status: 404}, kind: notFound, errIs: protocol.ErrOutcomeUnknown, streamIs: protocol.ErrStreamNotFound},
		{name: "410 after a lost try", sent: retried, ans: answer{status: 410}, kind: notFound, errIs: protocol.ErrOutcomeUnknown, streamIs: protocol.ErrStreamGone},
		{name: "400 after a lost try", sent: retried, ans: answer{status: 400}, kind: rejected, errIs: protocol.ErrOutcomeUnknown, isAnswer: true},
		{name: "409 content type mismatch after a lost try", sent: retried, ans: answer{status: 409, streamType: &textPlain}, kind: rejected, errIs: protocol.ErrOutcomeUnknown},
		{name: "final failure before writing after a lost try", sent: retried, ans: answer{err: errNet}, kind: rejected, errIs: protocol.ErrOutcomeUnknown},
		{name: "gave up, none of these tries written, an earlier launch may be", sent: plain, ans: answer{err: protocol.ErrRetriesExhausted, gaveUp: true, mayBeWritten: true}, kind: unanswered, mayBe: true, errIs: protocol.ErrOutcomeUnknown},
		// Transport outcomes of one try.
		{name: "network error before the request was written", sent: plain, ans: answer{err: errNet, retryable: true}, kind: retryable, mayBe: false},
		{name: "network error or timeout after it was written", sent: plain, ans: answer{err: errNet, retryable: true, mayBeWritten: true}, kind: retryable, mayBe: true},
		{name: "malformed answer after it was written", sent: plain, ans: answer{err: errNet, mayBeWritten: true}, kind: retryable, mayBe: true},
		{name: "final failure before writing (certificate, HeaderFunc)", sent: plain, ans: answer{err: errNet}, kind: rejected},
		// How the retries ended.
		{name: "gave up, never written", sent: plain, ans: answer{err: protocol.ErrRetriesExhausted, gaveUp: true}, kind: unanswered, mayBe: false, errIs: protocol.ErrRetriesExhausted},
		{name: "gave up, server unreachable on every try", sent: plain, ans: answer{err: fmt.Errorf("%w: %w", protocol.ErrServerUnreachable, protocol.ErrRetriesExhausted), gaveUp: true}, kind: unanswered, mayBe: false, errIs: protocol.ErrServerUnreachable},
		{name: "gave up, may be written", sent: plain, ans: answer{err: protocol.ErrOutcomeUnknown, gaveUp: true, mayBeWritten: true}, kind: unanswered, mayBe: true, errIs: protocol.ErrOutcomeUnknown},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			o := classify(r.sent, r.ans, target{url: "http://h/s"})
			require.Equal(t, r.kind, o.kind, "kind")
			switch o.kind {
			case duplicateOfOthers, gap, staleGap, stateLost, fenced:
				assert.Equal(t, r.seq, o.seq, "seq")
			case retryable, unanswered:
				assert.Equal(t, r.mayBe, o.mayBeWritten, "may be written")
			}
			if r.errIs != nil {
				assert.ErrorIs(t, o.err, r.errIs)
			}
			if r.streamIs != nil {
				assert.ErrorIs(t, o.streamErr, r.streamIs)
				assert.NotErrorIs(t, o.streamErr, protocol.ErrOutcomeUnknown, "later batches were not sent")
			}
			if r.isAnswer {
				assert.ErrorContains(t, o.err, fmt.Sprintf("POST http://h/s: %d", r.ans.status))
			}
			for _, s := range r.errHas {
				assert.Contains(t, o.err.Error(), s)
			}
			switch o.kind {
			case closedByOthers, fenced, notFound, rejected:
				// The rule of every final answer: "not written" unless an
				// earlier try may have been.
				if r.sent.earlier {
					assert.ErrorIs(t, o.err, protocol.ErrOutcomeUnknown, "an earlier try may have been written")
				} else if o.err != nil {
					assert.NotErrorIs(t, o.err, protocol.ErrOutcomeUnknown)
				}
			}
			switch o.kind {
			case rejected, notFound, fenced, retryable, unanswered:
				assert.Error(t, o.err, "a failing outcome carries its error")
			}
			if r.offset != "" {
				assert.Equal(t, r.offset, o.offset)
			}
		})
	}
}

func TestClosedOnHead(t *testing.T) {
	closed := http.Header{"Stream-Closed": {"true"}}
	require.True(t, *closedOnHead(200, closed))
	require.False(t, *closedOnHead(200, http.Header{}))
	require.Nil(t, closedOnHead(404, closed))
	require.Nil(t, closedOnHead(503, closed))
}

func TestTypeOnHead(t *testing.T) {
	require.Equal(t, "text/plain", *typeOnHead(200, http.Header{"Content-Type": {" text/plain "}}))
	require.Nil(t, typeOnHead(200, http.Header{}))
	require.Nil(t, typeOnHead(404, http.Header{"Content-Type": {"text/plain"}}))
	data, closeOnly, closeFinal := sent{}, sent{close: true}, sent{close: true, final: true}
	require.True(t, needsTypeCheck(data, answer{status: 409, header: http.Header{}}))
	require.True(t, needsTypeCheck(closeFinal, answer{status: 409, header: http.Header{}}))
	require.False(t, needsTypeCheck(closeOnly, answer{status: 409, header: http.Header{}}), "§5.2: no Content-Type check without a body")
	require.False(t, needsTypeCheck(data, answer{status: 409, header: http.Header{"Stream-Closed": {"true"}}}))
	require.False(t, needsTypeCheck(data, answer{status: 409, header: http.Header{"Producer-Expected-Seq": {"4"}}}))
	require.False(t, needsTypeCheck(data, answer{status: 400, header: http.Header{}}))
}
