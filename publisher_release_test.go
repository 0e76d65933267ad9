package durablestreams

import (
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// A Flush that took its list of producers just before the reaper released
// one of them (every message acknowledged) must not fail for it. Before,
// it returned `topic "t": producer is closed`, untyped, though nothing
// failed. The reaper's step runs here between the list and the flush, as
// it can in a Publisher with a small IdleProducerTimeout.
func TestFlushOfAProducerReleasedIdleSucceeds(t *testing.T) {
	var asyncErr error
	pub, err := NewPublisher(PublisherConfig{BaseURL: dstest.StreamURL(t), Async: true,
		OnAsyncError: func(_, _ string, err error) { asyncErr = errors.Join(asyncErr, err) }}, nil)
	require.NoError(t, err)
	defer pub.Close()
	for _, topic := range []string{"a", "b"} {
		require.NoError(t, pub.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte(`1`))))
	}
	require.NoError(t, pub.Flush(t.Context()))

	r := pub.topics
	listed := r.snapshot()
	require.Len(t, listed, 2)
	released := r.takeIdle(time.Now().Add(time.Hour), 0)
	require.Len(t, released, 2, "both producers are idle")
	for _, tp := range released {
		r.retire(tp)
	}
	require.NoError(t, r.flushAll(t.Context(), listed), "nothing failed")
	require.NoError(t, pub.Flush(t.Context()))
	require.NoError(t, asyncErr)
}
