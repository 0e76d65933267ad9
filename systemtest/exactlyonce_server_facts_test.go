package systemtest

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// eoPost appends body with producer headers (id, epoch, seq) and a
// Stream-Seq, and returns the status, headers and body of the answer.
func eoPost(t *testing.T, url, id, epoch, seq, streamSeq, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if id != "" {
		req.Header.Set("Producer-Id", id)
		req.Header.Set("Producer-Epoch", epoch)
		req.Header.Set("Producer-Seq", seq)
	}
	if streamSeq != "" {
		req.Header.Set("Stream-Seq", streamSeq)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(text)
}

// TestExactlyOnceServerFacts pins what exactly-once outputs rely on, on
// whichever server runs the suite (the Node reference server, or the
// Caddy server through DURABLE_STREAMS_URL). Both servers' sources agree
// (packages/server/src/store.ts append, packages/caddy-plugin/store
// Append): producer headers are checked first, Stream-Seq second, and
// producer state is committed only with an append.
func TestExactlyOnceServerFacts(t *testing.T) {
	url := dstest.StreamURL(t)
	httpDo(t, http.MethodPut, url, "application/json", "")

	// Stream-Seq is per stream: writer b's lower Stream-Seq conflicts
	// with writer a's, although b never wrote.
	st, _, _ := eoPost(t, url, "a", "0", "0", "5", `[1]`)
	require.Equal(t, http.StatusOK, st)
	st, h, body := eoPost(t, url, "b", "0", "0", "4", `[2]`)
	require.Equal(t, http.StatusConflict, st, "Stream-Seq is per stream")
	// A Stream-Seq 409 carries neither Stream-Closed nor
	// Producer-Expected-Seq; its body says "sequence" (Node: "Sequence
	// conflict", Caddy: "sequence number conflict"), a content type 409
	// says "mismatch".
	assert.Empty(t, h.Get("Stream-Closed"))
	assert.Empty(t, h.Get("Producer-Expected-Seq"))
	assert.Contains(t, strings.ToLower(body), "sequence")
	assert.NotContains(t, strings.ToLower(body), "mismatch")

	// The 409 committed nothing of b: its first request (seq 0) is still
	// to come.
	st, _, _ = eoPost(t, url, "b", "0", "0", "6", `[3]`)
	require.Equal(t, http.StatusOK, st, "a Stream-Seq 409 commits no producer state: the same Producer-Seq is sent again")

	// Nor of a's: after a 409 at seq 1, seq 1 is still expected.
	st, _, _ = eoPost(t, url, "a", "0", "1", "6", `[4]`)
	require.Equal(t, http.StatusConflict, st)
	st, _, _ = eoPost(t, url, "a", "0", "1", "7", `[5]`)
	require.Equal(t, http.StatusOK, st)

	// A retry of an applied request is a 204 duplicate, checked before
	// Stream-Seq (which would conflict now), with Producer-Seq = the last.
	st, h, _ = eoPost(t, url, "a", "0", "1", "7", `[5]`)
	require.Equal(t, http.StatusNoContent, st, "producer headers are checked before Stream-Seq")
	assert.Equal(t, "1", h.Get("Producer-Seq"))

	// A new epoch whose first request draws a Stream-Seq 409 is not
	// committed: the old epoch is not fenced until the new one writes.
	st, _, _ = eoPost(t, url, "a", "1", "0", "1", `[6]`)
	require.Equal(t, http.StatusConflict, st)
	st, _, _ = eoPost(t, url, "a", "0", "2", "8", `[7]`)
	require.Equal(t, http.StatusOK, st, "an uncommitted new epoch fences nothing")
	st, _, _ = eoPost(t, url, "a", "1", "0", "9", `[8]`)
	require.Equal(t, http.StatusOK, st)
	st, h, _ = eoPost(t, url, "a", "0", "3", "99", `[9]`)
	require.Equal(t, http.StatusForbidden, st, "once the new epoch wrote, the old one is fenced")
	assert.Equal(t, "1", h.Get("Producer-Epoch"))

	assert.Len(t, readJSONStream(t, url), 5)
}
