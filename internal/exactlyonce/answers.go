package exactlyonce

import (
	"net/http"
	"strconv"
	"strings"
)

// eoKind is what one answer to an exactly-once output write means.
type eoKind int

const (
	// eoWritten: 200, the outputs were appended now.
	eoWritten eoKind = iota
	// eoDuplicate: 204, an earlier try of this very request (same
	// Producer-Id, epoch and seq) was appended; nothing is appended again.
	// Both servers check the producer before Stream-Seq, so a retry is
	// answered 204, never 409.
	eoDuplicate
	// eoAlreadyWritten: 409 without Stream-Closed, Producer-Expected-Seq
	// or a type mismatch: the Stream-Seq is not above the stream's last,
	// so an earlier delivery of this input (by this member or a former
	// owner) wrote these outputs. Nothing was appended and, on both
	// servers, the producer's epoch and seq were not committed: the next
	// request reuses them.
	eoAlreadyWritten
	// eoFenced: 403, a newer owner (a higher lease epoch) wrote to the
	// stream; nothing was appended.
	eoFenced
	// eoSeqGap: 409 with Producer-Expected-Seq: the server's producer
	// state differs from ours (it forgot the producer: a restart of an
	// in-memory server); nothing was appended.
	eoSeqGap
	// eoClosed: 409 with Stream-Closed: true.
	eoClosed
	// eoTypeMismatch: 409 naming a content type mismatch.
	eoTypeMismatch
	// eoNotFound: 404, the stream is gone.
	eoNotFound
	// eoRetry: 429 or 5xx; a 5xx may have been appended.
	eoRetry
	// eoNotEndpoint: a success without the headers a Durable Streams
	// server sends (a proxy's default route).
	eoNotEndpoint
	// eoFailed: any other answer; nothing was appended.
	eoFailed
)

var eoKindNames = [...]string{"written", "duplicate", "already written", "fenced", "seq gap", "closed",
	"type mismatch", "not found", "retry", "not an endpoint", "failed"}

func (k eoKind) String() string { return eoKindNames[k] }

// eoAnswer is one classified answer.
type eoAnswer struct {
	kind eoKind
	// expected is Producer-Expected-Seq (eoSeqGap); epoch the server's
	// Producer-Epoch (eoFenced); last the server's last accepted
	// Producer-Seq (eoDuplicate); -1 when absent.
	expected, epoch, last int64
}

// classifyEO interprets every (status, header) combination of an
// exactly-once write in one place. The body is read only to tell a
// Stream-Seq conflict from a content type mismatch, which both servers
// answer 409 with no header of their own (Node: "Sequence conflict" /
// "Content-type mismatch"; Caddy: "sequence number conflict" / "content
// type mismatch"); the Publisher creates each output stream with its own
// content type first, so a mismatch means the stream was recreated.
func classifyEO(status int, h http.Header, body string) eoAnswer {
	a := eoAnswer{expected: -1, epoch: -1, last: -1}
	switch {
	case status == http.StatusOK:
		a.kind = eoWritten
		if h.Get("Stream-Next-Offset") == "" {
			a.kind = eoNotEndpoint
		}
	case status == http.StatusNoContent:
		a.kind = eoDuplicate
		a.last = headerInt64(h, "Producer-Seq")
		if a.last < 0 {
			a.kind = eoNotEndpoint
		}
	case status == http.StatusForbidden:
		a.kind = eoFenced
		a.epoch = headerInt64(h, "Producer-Epoch")
	case status == http.StatusConflict:
		a.kind, a.expected = conflictKind(h, body)
	case status == http.StatusNotFound:
		a.kind = eoNotFound
	case status == http.StatusTooManyRequests || status >= 500:
		a.kind = eoRetry
	default:
		a.kind = eoFailed
	}
	return a
}

// conflictKind tells the four 409s apart.
func conflictKind(h http.Header, body string) (eoKind, int64) {
	switch {
	case isTrue(h.Get("Stream-Closed")):
		return eoClosed, -1
	case h.Get("Producer-Expected-Seq") != "":
		return eoSeqGap, headerInt64(h, "Producer-Expected-Seq")
	case strings.Contains(strings.ToLower(body), "mismatch"):
		return eoTypeMismatch, -1
	}
	return eoAlreadyWritten, -1
}

func isTrue(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "true") }

func headerInt64(h http.Header, name string) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(h.Get(name)), 10, 64)
	if err != nil {
		return -1
	}
	return n
}
