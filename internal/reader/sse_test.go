package reader

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

// TestSSEBatchOverMaxBodyBytesIsReadByGET: an SSE batch larger than
// MaxBodyBytes (many small messages in one append) is read by a catch-up
// GET, whose body is handed over as it arrives, and live SSE goes on
// after it.
func TestSSEBatchOverMaxBodyBytesIsReadByGET(t *testing.T) {
	url := dstest.StreamURL(t)
	send(t, http.MethodPut, url, "application/json", "")
	var items []string
	for i := range 100 {
		items = append(items, fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", 20)))
	}
	batch := "[" + strings.Join(items, ",") + "]"
	require.Greater(t, len(batch), 2000)

	var (
		mu    sync.Mutex
		reads []string
	)
	client := &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		mu.Lock()
		reads = append(reads, req.URL.Query().Get("live"))
		mu.Unlock()
		return http.DefaultTransport.RoundTrip(req)
	})}
	r, err := New(Config{URL: url, Mode: SSE, MaxBodyBytes: 1000, RetryPolicy: fastRetry,
		Client: &protocol.Client{HTTP: client, RequestTimeout: 5 * time.Second}, LiveTimeout: 10 * time.Second})
	require.NoError(t, err)
	t.Cleanup(r.Close)
	send(t, http.MethodPost, url, "application/json", `[{"n":-1}]`)
	require.JSONEq(t, `[{"n":-1}]`, string(readAll(t, next(t, r)))) // catch-up

	send(t, http.MethodPost, url, "application/json", batch)
	require.JSONEq(t, batch, string(readAll(t, next(t, r))), "the batch comes whole, by GET")

	send(t, http.MethodPost, url, "application/json", `[{"n":100}]`)
	require.JSONEq(t, `[{"n":100}]`, string(readAll(t, next(t, r))))
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"", "sse", "", "sse"}, reads, "catch-up, SSE, the batch by GET, SSE again")
}

// TestSSEConnectionsThatBringNothingPause: a FAKE server (the reference
// one holds an SSE response open) that ends every SSE response after one
// control event, at the offset asked for. The connections bring nothing
// new, so the reader pauses between them as after an empty long-poll,
// instead of reconnecting in a spin.
func TestSSEConnectionsThatBringNothingPause(t *testing.T) {
	const tail = "0000000000000000_0000000000000000"
	conns := make(chan struct{}, 1000)
	fakeShortSSEServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set(protocol.HeaderNextOffset, tail)
		if req.URL.Query().Get("live") == "sse" {
			conns <- struct{}{}
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "event: control\ndata:{\"streamNextOffset\":%q,\"streamCursor\":\"1\",\"upToDate\":true}\n\n", tail)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set(protocol.HeaderUpToDate, "true")
		fmt.Fprint(w, "[]")
	}))
	defer fakeShortSSEServer.Close()
	pause := 40 * time.Millisecond // Backoff waits at least half of it
	r, err := New(Config{URL: fakeShortSSEServer.URL, Mode: SSE, LiveTimeout: 10 * time.Second,
		RetryPolicy: retry.Policy{InitialBackoff: pause, MaxBackoff: pause}})
	require.NoError(t, err)
	defer r.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := r.Next(ctx)
		done <- err
	}()
	<-conns
	start := time.Now()
	const more = 10
	for range more {
		select {
		case <-conns:
		case <-time.After(10 * time.Second):
			t.Fatal("the reader stopped reconnecting")
		}
	}
	took := time.Since(start)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	require.GreaterOrEqual(t, took, more*pause/2, "%d connections that brought nothing, without a pause between them", more)
}
