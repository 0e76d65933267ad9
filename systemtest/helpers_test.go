package systemtest

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// readJSONStream reads every message of a JSON-mode stream from the start.
func readJSONStream(t testing.TB, streamURL string) []json.RawMessage {
	t.Helper()
	return dstest.ReadJSON(t, streamURL)
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

// answerLostTransport lets the server apply the next armed POSTs, throws
// their answers away, runs then (as another writer acting meanwhile) and
// fails them as a connection cut after the request was written.
type answerLostTransport struct {
	base  http.RoundTripper
	armed atomic.Int32
	then  func()
}

func (l *answerLostTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || l.armed.Add(-1) < 0 {
		return l.base.RoundTrip(req)
	}
	resp, err := l.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if l.then != nil {
		l.then()
	}
	return nil, errors.New("test: connection reset after the server applied the request")
}

// rawRequest sends one request outside any Publisher, as another writer
// would; it is safe in any goroutine.
func rawRequest(method, url, contentType, body string, header ...string) (int, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}
