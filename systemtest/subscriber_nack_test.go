package systemtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// TestNackRedeliversTheMessageRead: what a handler changed in a message
// before nacking it (payload, metadata) is not carried over: the message
// comes again as it was read from the stream.
func TestNackRedeliversTheMessageRead(t *testing.T) {
	base := dstest.StreamURL(t)
	sub := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: base, NackResendDelay: time.Millisecond})
	require.NoError(t, sub.SubscribeInitialize("t"))
	msgs := newMessages(2)
	httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs...))
	ch, err := sub.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	first := receive(t, ch)
	requireSameMessage(t, msgs[0], first)
	offset := first.Metadata.Get(ds.MetadataOffset)
	for range 2 {
		m := first
		m.Payload = []byte(`{"changed":true}`)
		m.Metadata.Set("i", "changed")
		m.Metadata.Set("added", "by the handler")
		m.Metadata.Set(ds.MetadataOffset, "x")
		m.Nack()
		first = receive(t, ch)
		requireSameMessage(t, msgs[0], first)
		require.Empty(t, first.Metadata.Get("added"))
		require.Equal(t, offset, first.Metadata.Get(ds.MetadataOffset))
		pos, ok := ds.PositionOf(first)
		require.True(t, ok)
		require.Equal(t, ds.Position{Offset: "-1", Skip: 1}, pos)
	}
	first.Ack()
	requireSameMessage(t, msgs[1], receive(t, ch))
}

// TestHandlerMayTouchANackedMessage: a handler (or middleware) that
// writes to a message after nacking it races with nothing: the message
// sent again is not made from the one the handler holds. Run with -race.
func TestHandlerMayTouchANackedMessage(t *testing.T) {
	base := dstest.StreamURL(t)
	sub := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: base, NackResendDelay: time.Millisecond})
	require.NoError(t, sub.SubscribeInitialize("t"))
	msgs := newMessages(1)
	httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs...))
	ch, err := sub.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	for range 20 {
		m := receive(t, ch)
		m.Nack()
		for range 50 {
			m.Metadata.Set("after", "nack")
			m.Payload = nil
		}
	}
	m := receive(t, ch)
	requireSameMessage(t, msgs[0], m)
	require.Empty(t, m.Metadata.Get("after"))
}

// TestCommitIntervalHoldsDuringNackResendDelay: a position that moved is
// stored within CommitInterval also while a nacked message waits out
// NackResendDelay.
func TestCommitIntervalHoldsDuringNackResendDelay(t *testing.T) {
	base := dstest.StreamURL(t)
	store := &countingStore{OffsetStore: ds.NewMemoryOffsetStore()}
	cfg := ds.SubscriberConfig{
		BaseURL: base, Checkpoint: "g", OffsetStore: store,
		CommitInterval: 20 * time.Millisecond, NackResendDelay: time.Hour,
	}
	sub := newTestSubscriber(t, cfg)
	require.NoError(t, sub.SubscribeInitialize("t"))
	httpDo(t, "POST", base+"/t", "application/json", envelopes(t, newMessages(5)...))
	ch, err := sub.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	for range 3 {
		receive(t, ch).Ack()
	}
	receive(t, ch).Nack() // waits an hour before it comes again
	require.Eventually(t, func() bool {
		pos, _, _ := store.Load(t.Context(), "g", "t")
		return pos == ds.Position{Offset: "-1", Skip: 3}
	}, 10*time.Second, 10*time.Millisecond, "the acked position is stored while the nack waits")
	stores := store.stores.Load()
	require.NoError(t, sub.Close(), "Close ends the wait")
	require.Equal(t, stores, store.stores.Load(), "nothing moved since: Close stores nothing more")
}
