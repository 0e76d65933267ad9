package durablestreams_test

import (
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// readJSONStream reads every message of a JSON-mode stream from the start,
// following Stream-Next-Offset until the server says it is up to date.
func readJSONStream(t testing.TB, streamURL string) []json.RawMessage {
	t.Helper()
	var all []json.RawMessage
	offset := "-1"
	for range 10_000 {
		resp, err := http.Get(streamURL + "?offset=" + offset)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", streamURL, body)
		var batch []json.RawMessage
		require.NoError(t, json.Unmarshal(body, &batch), "body %q", body)
		all = append(all, batch...)
		offset = resp.Header.Get("Stream-Next-Offset")
		if resp.Header.Get("Stream-Up-To-Date") == "true" {
			return all
		}
	}
	t.Fatalf("stream %s never became up to date", streamURL)
	return nil
}

// countingTransport counts requests by method, for tests that assert how
// many requests a behaviour costs.
type countingTransport struct {
	base  http.RoundTripper
	posts atomic.Int64
	puts  atomic.Int64
	all   atomic.Int64
}

func newCountingClient() (*http.Client, *countingTransport) {
	ct := &countingTransport{base: http.DefaultTransport.(*http.Transport).Clone()}
	return &http.Client{Transport: ct}, ct
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.all.Add(1)
	switch req.Method {
	case http.MethodPost:
		c.posts.Add(1)
	case http.MethodPut:
		c.puts.Add(1)
	}
	return c.base.RoundTrip(req)
}

func countGoroutines() int { return runtime.NumGoroutine() }

// signalTransport tells on posts when a POST is about to be sent.
type signalTransport struct {
	base  http.RoundTripper
	posts chan<- struct{}
}

func (s signalTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost {
		select {
		case s.posts <- struct{}{}:
		default:
		}
	}
	return s.base.RoundTrip(req)
}
