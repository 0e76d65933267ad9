package topics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/producer"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

var errClosed = errors.New("registry closed")

// newRegistry is a Registry of JSON streams under base, closed when the
// test ends; the root package's hooks are stood for by plain ones.
func newRegistry(t *testing.T) *Registry {
	t.Helper()
	client := &protocol.Client{HTTP: &http.Client{}, RequestTimeout: 5 * time.Second, Reach: &protocol.Reach{Logger: watermill.NopLogger{}}}
	streams := &protocol.StreamSettings{Client: client, Logger: watermill.NopLogger{}}
	r := New(Config{
		Producer:     producer.Config{ContentType: protocol.ContentTypeJSON, ProducerID: "test-" + watermill.NewUUID(), Client: client, Retry: client.Retry},
		Logger:       watermill.NopLogger{},
		Reach:        client.Reach,
		IdleTimeout:  time.Hour,
		CloseTimeout: 10 * time.Second,
		Create: func(ctx context.Context, topic, streamURL string) error {
			return streams.Ensure(ctx, topic, streamURL, protocol.StreamOptions{ContentType: protocol.ContentTypeJSON})
		},
		Public: func(err error) error { return err },
		Wrap: func(err error, format string, args ...any) error {
			return fmt.Errorf(format+": %w", append(args, err)...)
		},
		Closed: errClosed,
	})
	t.Cleanup(func() { require.NoError(t, r.Close(context.Background())) })
	return r
}

// A Flush that took its list of producers just before the reaper released
// one of them (every message acknowledged) must not fail for it. Before,
// it returned `topic "t": producer is closed`, untyped, though nothing
// failed. The reaper's step runs here between the list and the flush, as
// it can in a Publisher with a small IdleProducerTimeout.
func TestFlushOfAProducerReleasedIdleSucceeds(t *testing.T) {
	base := dstest.StreamURL(t)
	r := newRegistry(t)
	var mu sync.Mutex
	var asyncErr error
	for _, topic := range []string{"a", "b"} {
		tp, err := r.acquire(t.Context(), topic, base+"/"+topic, false)
		require.NoError(t, err)
		require.NoError(t, tp.producer.Append(t.Context(), []byte(`1`), func(_ string, err error) {
			mu.Lock()
			defer mu.Unlock()
			asyncErr = errors.Join(asyncErr, err)
		}))
		r.release(tp)
	}
	require.NoError(t, r.Flush(t.Context()))

	listed := r.snapshot()
	require.Len(t, listed, 2)
	released := r.takeIdle(time.Now().Add(time.Hour), 0)
	require.Len(t, released, 2, "both producers are idle")
	for _, tp := range released {
		r.retire(tp)
	}
	require.NoError(t, r.flushAll(t.Context(), listed), "nothing failed")
	require.NoError(t, r.Flush(t.Context()))
	mu.Lock()
	defer mu.Unlock()
	require.NoError(t, asyncErr)
}
