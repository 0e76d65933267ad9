package systemtest

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

// fastSubRetry keeps fault tests short.
var fastSubRetry = retry.Policy{InitialBackoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, MaxElapsed: 20 * time.Second}

// httpDo sends one request and fails the test on a non-2xx answer.
func httpDo(t testing.TB, method, url, contentType, body string, header ...string) http.Header {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Less(t, resp.StatusCode, 300, "%s %s", method, url)
	return resp.Header
}

// envelopes marshals messages with JSONMarshaler into one POST body.
func envelopes(t testing.TB, msgs ...*message.Message) string {
	t.Helper()
	parts := make([]string, len(msgs))
	for i, m := range msgs {
		b, err := ds.JSONMarshaler{}.Marshal("t", m)
		require.NoError(t, err)
		parts[i] = string(b)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func newMessages(n int) []*message.Message {
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(`{"n":`+strings.Repeat("1", i+1)+`}`))
		msgs[i].Metadata.Set("i", strings.Repeat("x", i))
	}
	return msgs
}

// newTestSubscriber returns a subscriber on a base path of its own on the
// shared server, closed when the test ends.
func newTestSubscriber(t testing.TB, cfg ds.SubscriberConfig) *ds.Subscriber {
	t.Helper()
	if cfg.BaseURL == "" && cfg.TopicURL == nil {
		cfg.BaseURL = dstest.StreamURL(t)
	}
	if cfg.RetryPolicy == (retry.Policy{}) {
		cfg.RetryPolicy = fastSubRetry
	}
	if cfg.LiveTimeout == 0 {
		cfg.LiveTimeout = 10 * time.Second
	}
	sub, err := ds.NewSubscriber(cfg, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// receive waits for the next message.
func receive(t testing.TB, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		require.True(t, ok, "channel closed")
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
		return nil
	}
}

// requireClosed waits for the channel to close, acking what still comes.
func requireClosed(t testing.TB, ch <-chan *message.Message) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				return
			}
			m.Ack()
		case <-timeout:
			t.Fatal("channel not closed within 10s")
		}
	}
}

// requireSilent asserts that nothing is delivered for a while.
func requireSilent(t testing.TB, ch <-chan *message.Message, d time.Duration) {
	t.Helper()
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("unexpected message %s %q", m.UUID, m.Payload)
		}
		t.Fatal("channel closed unexpectedly")
	case <-time.After(d):
	}
}

func requireSameMessage(t testing.TB, want, got *message.Message) {
	t.Helper()
	require.Equal(t, want.UUID, got.UUID)
	require.Equal(t, string(want.Payload), string(got.Payload))
	for k, v := range want.Metadata {
		require.Equal(t, v, got.Metadata.Get(k), "metadata %q", k)
	}
	require.NotEmpty(t, got.Metadata.Get(ds.MetadataOffset))
}

// getSignal is an HTTP transport that reports each finished GET, so a test
// can act between two reads of the subscriber.
type getSignal struct {
	base http.RoundTripper
	gets chan struct{}
}

func newGetSignal() (*http.Client, *getSignal) {
	g := &getSignal{base: http.DefaultTransport.(*http.Transport).Clone(), gets: make(chan struct{}, 100)}
	return &http.Client{Transport: g}, g
}

func (g *getSignal) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := g.base.RoundTrip(req)
	if req.Method == http.MethodGet && err == nil {
		resp.Body = &signalBody{ReadCloser: resp.Body, done: g.gets}
	}
	return resp, err
}

type signalBody struct {
	io.ReadCloser
	done chan struct{}
}

func (b *signalBody) Close() error {
	err := b.ReadCloser.Close()
	select {
	case b.done <- struct{}{}:
	default:
	}
	return err
}

// countGoroutinesNow settles idle connections of the default client first.
func countGoroutinesNow() int {
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(50 * time.Millisecond) // let closed connections' goroutines exit
	return runtime.NumGoroutine()
}

// liveSignal is a RoundTripper that tells when the first live read (long-poll
// or SSE) is sent: the catch-up before it is done.
type liveSignal struct {
	base http.RoundTripper
	once sync.Once
	live chan struct{}
}

func newLiveSignal() (*http.Client, *liveSignal) {
	l := &liveSignal{base: http.DefaultTransport.(*http.Transport).Clone(), live: make(chan struct{})}
	return &http.Client{Transport: l}, l
}

func (l *liveSignal) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Query().Get("live") != "" {
		l.once.Do(func() { close(l.live) })
	}
	return l.base.RoundTrip(req)
}
