package exactlyonce

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestExactlyOnceAnswerTable has a row for every answer an exactly-once
// write can get (PROTOCOL.md §5.2, §5.2.1), as both servers give it.
func TestExactlyOnceAnswerTable(t *testing.T) {
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	rows := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   eoAnswer
	}{
		{"200 written", 200, hdr("Stream-Next-Offset", "0000000000000000_0000000000000042", "Producer-Seq", "3"), "", eoAnswer{eoWritten, -1, -1, -1}},
		{"200 without an offset: not a stream endpoint", 200, hdr(), "", eoAnswer{eoNotEndpoint, -1, -1, -1}},
		{"204 duplicate (Node: no offset)", 204, hdr("Producer-Epoch", "2", "Producer-Seq", "3"), "", eoAnswer{eoDuplicate, -1, -1, 3}},
		{"204 duplicate (Caddy: with the tail)", 204, hdr("Stream-Next-Offset", "0000000000000000_0000000000000042", "Producer-Epoch", "2", "Producer-Seq", "3"), "", eoAnswer{eoDuplicate, -1, -1, 3}},
		{"204 without Producer-Seq: not a stream endpoint", 204, hdr(), "", eoAnswer{eoNotEndpoint, -1, -1, -1}},
		{"403 stale epoch", 403, hdr("Producer-Epoch", "7"), "Stale producer epoch", eoAnswer{eoFenced, -1, 7, -1}},
		{"409 Stream-Seq (Node)", 409, hdr(), "Sequence conflict", eoAnswer{eoAlreadyWritten, -1, -1, -1}},
		{"409 Stream-Seq (Caddy)", 409, hdr(), "sequence number conflict\n", eoAnswer{eoAlreadyWritten, -1, -1, -1}},
		{"409 closed", 409, hdr("Stream-Closed", "true", "Stream-Next-Offset", "x"), "Stream is closed", eoAnswer{eoClosed, -1, -1, -1}},
		{"409 producer seq gap", 409, hdr("Producer-Expected-Seq", "0", "Producer-Received-Seq", "4"), "Producer sequence gap", eoAnswer{eoSeqGap, 0, -1, -1}},
		{"409 content type (Node)", 409, hdr(), "Content-type mismatch: expected application/json, got text/plain", eoAnswer{eoTypeMismatch, -1, -1, -1}},
		{"409 content type (Caddy)", 409, hdr(), "content type mismatch\n", eoAnswer{eoTypeMismatch, -1, -1, -1}},
		{"404 stream gone", 404, hdr(), "", eoAnswer{eoNotFound, -1, -1, -1}},
		{"429 rate limited", 429, hdr("Retry-After", "1"), "", eoAnswer{eoRetry, -1, -1, -1}},
		{"503 server trouble", 503, hdr(), "", eoAnswer{eoRetry, -1, -1, -1}},
		{"400 bad request", 400, hdr(), "invalid JSON", eoAnswer{eoFailed, -1, -1, -1}},
		{"410 gone", 410, hdr(), "", eoAnswer{eoFailed, -1, -1, -1}},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			assert.Equal(t, r.want, classifyEO(r.status, r.header, r.body))
		})
	}
}
