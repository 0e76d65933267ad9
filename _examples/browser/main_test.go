package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

func TestMain(m *testing.M) { dstest.Main(m) }

// runningDemo is run() in the background, on a free port.
type runningDemo struct {
	pageURL string
	server  string
	out     lockedBuffer
	cancel  context.CancelFunc
	done    chan error
}

func startDemo(t *testing.T, d demo) *runningDemo {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningDemo{pageURL: "http://" + ln.Addr().String() + "/", server: dstest.Shared(t).URL, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- run(ctx, &r.out, r.server, ln, d) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop ends run and checks that it returned no error. It is idempotent.
func (r *runningDemo) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
			require.NoError(t, err, r.out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10s of its context's end")
	}
}

var streamInPage = regexp.MustCompile(`<code>(http://[^<]+)</code>`)

func TestBrowserExampleServesPageAndPublishes(t *testing.T) {
	dstest.Shared(t)
	goroutines := runtime.NumGoroutine()
	demo := startDemo(t, demo{events: 5, interval: 10 * time.Millisecond})

	// Opening the page starts the publishing.
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	resp, err := client.Get(demo.pageURL)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, resp.Body.Close())
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Contains(t, string(body), `new EventSource(streamURL + "?offset="`)
	found := streamInPage.FindSubmatch(body)
	require.NotNil(t, found, "no stream URL in the page:\n%s", body)
	streamURL := string(found[1])
	require.Regexp(t, `^`+regexp.QuoteMeta(demo.server)+`/v1/stream/examples/browser/events-\w+$`, streamURL)
	// The script gets the same URL as a JavaScript string.
	js, err := json.Marshal(streamURL)
	require.NoError(t, err)
	require.Contains(t, string(body), "const streamURL = "+string(js)+";")

	// Read what the page would read: every event, then the last message,
	// then the end of the stream (the channel closes).
	sub, err := ds.NewSubscriber(ds.SubscriberConfig{TopicURL: func(string) (string, error) { return streamURL, nil }}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := sub.Subscribe(ctx, "events")
	require.NoError(t, err)
	var texts []string
	for msg := range msgs {
		var payload struct{ Text string }
		require.NoError(t, json.Unmarshal(msg.Payload, &payload))
		texts = append(texts, payload.Text)
		msg.Ack()
	}
	require.NoError(t, ctx.Err(), "the stream was not closed in time; got %q", texts)
	require.Equal(t, []string{"event 1 of 5", "event 2 of 5", "event 3 of 5", "event 4 of 5", "event 5 of 5", "that was the last event"}, texts)

	// The reader can see the end of the stream a moment before run
	// reports it; stopping run earlier would cut that report short.
	require.Eventually(t, func() bool {
		return strings.Contains(demo.out.String(), "stream closed; reload the page")
	}, 10*time.Second, 5*time.Millisecond, demo.out.String())
	demo.stop(t)
	require.Contains(t, demo.out.String(), "published event 5 at offset ")

	require.NoError(t, sub.Close())
	client.CloseIdleConnections()
	dstest.RequireGoroutinesBackTo(t, goroutines)
}

// lockedBuffer is a bytes.Buffer that run and the test may use at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
