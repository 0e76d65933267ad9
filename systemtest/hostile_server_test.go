package systemtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"

	"github.com/durablestreams/watermill-durablestreams/retry"
)

// fakeHostileServer is a FAKE Durable Streams server, not the reference
// one: it answers appends with what no real server sends (garbage headers,
// endless bodies), which the reference server cannot be made to do.
func fakeHostileServer(t *testing.T, post http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPut:
			w.Header().Set("Stream-Next-Offset", "0_0") // PROTOCOL.md §5.1
			w.WriteHeader(http.StatusCreated)
		case http.MethodPost:
			post(w, r)
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1/stream"
}

// endless writes until the client goes away, bounded at 1 GiB.
func endless(w http.ResponseWriter, r *http.Request) {
	chunk := []byte(strings.Repeat("garbage ", 8<<10))
	for range (1 << 30) / len(chunk) {
		if _, err := w.Write(chunk); err != nil || r.Context().Err() != nil {
			return
		}
	}
}

func hostilePublisher(t *testing.T, base string) *ds.Publisher {
	t.Helper()
	pub, err := ds.NewPublisher(ds.PublisherConfig{
		BaseURL:      base,
		CloseTimeout: 2 * time.Second,
		ClientConfig: ds.ClientConfig{RequestTimeout: 2 * time.Second, RetryPolicy: retry.Policy{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}},
	}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	return pub
}

func publishOne(pub *ds.Publisher) error {
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{"n":1}`))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	msg.SetContext(ctx)
	return pub.Publish("t", msg)
}

func TestHostileServerEndlessSuccessBody(t *testing.T) {
	base := fakeHostileServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Stream-Next-Offset", "0_1")
		w.WriteHeader(http.StatusOK)
		endless(w, r)
	})
	// A 200 is a 200: the body is not ours to read, only to drop.
	require.NoError(t, publishOne(hostilePublisher(t, base)))
}

func TestHostileServerEndlessErrorBody(t *testing.T) {
	base := fakeHostileServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		endless(w, r)
	})
	err := publishOne(hostilePublisher(t, base))
	require.ErrorIs(t, err, ds.ErrOutcomeUnknown, "a 5xx may come after the server wrote")
	require.NotErrorIs(t, err, ds.ErrRetriesExhausted)
	var httpErr *ds.HTTPError
	require.ErrorAs(t, err, &httpErr)
	assert.Equal(t, http.StatusInternalServerError, httpErr.StatusCode)
	assert.LessOrEqual(t, len(httpErr.Body), 512, "an error body is kept bounded")
}

func TestHostileServerGarbageProducerHeaders(t *testing.T) {
	cases := map[string]http.HandlerFunc{
		"409 with a garbage expected seq": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Producer-Expected-Seq", "-7x")
			w.WriteHeader(http.StatusConflict)
		},
		"403 with a garbage epoch": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Producer-Epoch", "99999999999999999999999")
			w.WriteHeader(http.StatusForbidden)
		},
		"a status no server sends": func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(299)
		},
	}
	for name, post := range cases {
		t.Run(name, func(t *testing.T) {
			err := publishOne(hostilePublisher(t, fakeHostileServer(t, post)))
			require.Error(t, err)
			var httpErr *ds.HTTPError
			require.ErrorAs(t, err, &httpErr, "a clear typed error, got %v", err)
		})
	}
}

// Issue 12 item 1: a 409 that repeats for the same batch, whatever it
// says, backs off and is bounded: one message costs a handful of requests.
func TestHostileServerRepeating409IsBounded(t *testing.T) {
	var posts atomic.Int64
	base := fakeHostileServer(t, func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		w.Header().Set("Producer-Expected-Seq", "0")
		w.Header().Set("Producer-Received-Seq", r.Header.Get("Producer-Seq"))
		w.WriteHeader(http.StatusConflict)
	})
	err := publishOne(hostilePublisher(t, base))
	require.Error(t, err)
	require.NotErrorIs(t, err, ds.ErrOutcomeUnknown, "every answer said the seq was not taken")
	t.Logf("%d POSTs", posts.Load())
	require.LessOrEqual(t, posts.Load(), int64(8))
}
