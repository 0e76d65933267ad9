package group

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// outcome is what an answer to a fenced write (Producer-Id "owner",
// Producer-Epoch = ownership epoch) means for the lease.
type outcome int

const (
	// written: the record is in the stream (200, or 204 with the same
	// seq after an earlier try of ours).
	written outcome = iota
	// duplicate: 204, the server already has this (epoch, seq). For a
	// seq > 0 only we write at our epoch, so it was our earlier try;
	// for a claim (seq 0) a rival claimer may have written it: the
	// caller reads the stream back to find out.
	duplicate
	// fenced: the lease is lost; reason says why.
	fenced
	// again: send the same request again (network error, 429, 5xx).
	again
	// failed: an answer the protocol gives no meaning here.
	failed
)

// classify interprets one answer to a fenced write, in one place. The
// rows of TestClassify cover every case.
//
//   - 200: written.
//   - 204: duplicate (both servers; the Caddy server adds
//     Stream-Next-Offset, which changes nothing here).
//   - 403: a newer epoch owns the stream; Producer-Epoch says which.
//   - 409 with Stream-Closed: the ownership stream was closed.
//   - 409 otherwise: a sequence gap. We never skip a seq, so the server
//     forgot our producer state (PROTOCOL.md §5.2.1 cleanup, restart of
//     an in-memory server, stream deleted and recreated): we cannot prove
//     we still own the stream, so the lease ends and the member claims
//     it again under a new epoch.
//   - 404: the ownership stream is gone. A former owner never recreates
//     it (that would resurrect a stale position); only a claim does.
//   - 429, 5xx: retry the same (epoch, seq, body); retries never duplicate.
//   - anything else (400 included): failed.
func classify(status int, h http.Header) (outcome, string) {
	switch {
	case status == http.StatusOK:
		return written, ""
	case status == http.StatusNoContent:
		return duplicate, ""
	case status == http.StatusForbidden:
		if e := h.Get(protocol.HeaderProducerEpoch); e != "" {
			return fenced, reasonStaleEpoch + ", server epoch " + e
		}
		return fenced, reasonStaleEpoch
	case status == http.StatusConflict && strings.EqualFold(h.Get(protocol.HeaderClosed), "true"):
		return fenced, reasonClosed
	case status == http.StatusConflict && h.Get(protocol.HeaderExpectedSeq) != "":
		return fenced, reasonSeqGap + ", expected seq " + h.Get(protocol.HeaderExpectedSeq)
	case status == http.StatusConflict:
		return fenced, reasonSeqGap
	case status == http.StatusNotFound:
		return fenced, reasonMissing
	case protocol.RetryableStatus(status):
		return again, ""
	}
	return failed, "unexpected answer " + strconv.Itoa(status) + " " + http.StatusText(status)
}

// classifyCreate interprets one answer to the PUT of a position log, in
// one place (rows in TestClassifyCreate):
//
//   - 201, 200: the log exists as asked.
//   - 409: it exists with the other closure: a log we create open was
//     sealed by a newer owner (fenced); a log we seal was just created
//     open by the former owner (the caller closes it and goes on).
//   - 429, 5xx: retry.
//   - anything else: failed.
func classifyCreate(status int) (outcome, string) {
	switch {
	case status == http.StatusCreated || status == http.StatusOK:
		return written, ""
	case status == http.StatusConflict:
		return fenced, reasonSealed
	case protocol.RetryableStatus(status):
		return again, ""
	}
	return failed, "unexpected answer " + strconv.Itoa(status) + " " + http.StatusText(status)
}
