package systemtest

import (
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// TestPositionOfResumesAfterEachMessage: the position of every received
// message, stored as a group's position, makes the next Subscribe start
// with the message after it, whether the messages came in one read or in
// several.
func TestPositionOfResumesAfterEachMessage(t *testing.T) {
	forReadModes(t, func(t *testing.T, mode ds.ReadMode) {
		base := dstest.StreamURL(t)
		msgs := newMessages(6)
		sub := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: base, Mode: mode})
		require.NoError(t, sub.SubscribeInitialize("t"))
		httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs[:3]...)) // one catch-up read
		ch, err := sub.Subscribe(t.Context(), "t")
		require.NoError(t, err)

		var positions []ds.Position
		take := func(want *message.Message) {
			got := receive(t, ch)
			requireSameMessage(t, want, got)
			pos, ok := ds.PositionOf(got)
			require.True(t, ok)
			positions = append(positions, pos)
			got.Ack()
		}
		for _, m := range msgs[:3] {
			take(m)
		}
		httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs[3:5]...)) // live reads
		take(msgs[3])
		take(msgs[4])
		httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs[5]))
		take(msgs[5])
		require.NotEqual(t, positions[0].Offset, positions[5].Offset, "the test must span several reads")

		store := ds.NewMemoryOffsetStore()
		for i, pos := range positions[:5] {
			require.NoError(t, store.Store(t.Context(), "g", "t", pos))
			resumed := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: base, Mode: mode, Checkpoint: "g", OffsetStore: store})
			ch, err := resumed.Subscribe(t.Context(), "t")
			require.NoError(t, err)
			got := receive(t, ch)
			require.Equal(t, msgs[i+1].UUID, got.UUID, "resuming after message %d at %+v", i, pos)
			got.Nack() // not handled: Close does not wait for it
			require.NoError(t, resumed.Close())
		}
	})
}

// TestPositionOfByteModeFrameAcrossAppends: in byte mode a frame may
// straddle two appends; positions still count whole frames.
func TestPositionOfByteModeFrameAcrossAppends(t *testing.T) {
	base := dstest.StreamURL(t)
	framed := ds.FramedMarshaler{}
	msgs := newMessages(3)
	var stream []byte
	for _, m := range msgs {
		b, err := framed.Marshal("t", m)
		require.NoError(t, err)
		stream = append(stream, b...)
	}
	cfg := ds.SubscriberConfig{BaseURL: base, Unmarshaler: framed}
	sub := newTestSubscriber(t, cfg)
	require.NoError(t, sub.SubscribeInitialize("t"))
	cut := len(stream) / 2 // inside the second frame
	httpDo(t, "POST", base+"/t", framed.ContentType(), string(stream[:cut]))
	httpDo(t, "POST", base+"/t", framed.ContentType(), string(stream[cut:]))
	ch, err := sub.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	var positions []ds.Position
	for _, want := range msgs {
		got := receive(t, ch)
		requireSameMessage(t, want, got)
		pos, ok := ds.PositionOf(got)
		require.True(t, ok)
		positions = append(positions, pos)
		got.Ack()
	}

	store := ds.NewMemoryOffsetStore()
	require.NoError(t, store.Store(t.Context(), "g", "t", positions[1]))
	cfg.Checkpoint, cfg.OffsetStore = "g", store
	resumed := newTestSubscriber(t, cfg)
	ch, err = resumed.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	got := receive(t, ch)
	require.Equal(t, msgs[2].UUID, got.UUID)
	got.Nack() // not handled: the stop does not wait for it
}

func TestPositionOfNeedsAReceivedMessage(t *testing.T) {
	msg := message.NewMessage("u", nil)
	_, ok := ds.PositionOf(msg)
	require.False(t, ok, "a fresh message")
	msg.Metadata.Set(ds.MetadataOffset, "0_1") // as after Publish
	_, ok = ds.PositionOf(msg)
	require.False(t, ok, "a published message")
	msg.Metadata.Set(ds.MetadataIndex, "x")
	_, ok = ds.PositionOf(msg)
	require.False(t, ok, "a malformed index")
	msg.Metadata.Set(ds.MetadataIndex, "4")
	pos, ok := ds.PositionOf(msg)
	require.True(t, ok)
	require.Equal(t, ds.Position{Offset: "0_1", Skip: 5}, pos)
}

// closeRecorder is a transport that records CloseIdleConnections.
type closeRecorder struct {
	http.RoundTripper
	closed atomic.Bool
}

func (c *closeRecorder) CloseIdleConnections() { c.closed.Store(true) }

func TestStreamOffsetStoreCloseDropsItsConnections(t *testing.T) {
	base := dstest.StreamURL(t)
	before := countGoroutinesNow()
	store, err := ds.NewStreamOffsetStore(ds.StreamOffsetStoreConfig{BaseURL: base})
	require.NoError(t, err)
	require.NoError(t, store.Store(t.Context(), "g", "t", ds.Position{Offset: "-1", Skip: 1}))
	_, _, err = store.Load(t.Context(), "g", "t")
	require.NoError(t, err)
	require.Greater(t, runtime.NumGoroutine(), before, "the store keeps a connection open")
	require.NoError(t, store.Close())
	require.NoError(t, store.Close())
	// Well before the transport's idle timeout (4s) would drop them.
	deadline := time.Now().Add(time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines outlive Close, %d before\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}

	// A client of the user's is the user's to close.
	rec := &closeRecorder{RoundTripper: http.DefaultTransport}
	store, err = ds.NewStreamOffsetStore(ds.StreamOffsetStoreConfig{
		BaseURL:      base,
		ClientConfig: ds.ClientConfig{HTTPClient: &http.Client{Transport: rec}},
	})
	require.NoError(t, err)
	require.NoError(t, store.Close())
	require.False(t, rec.closed.Load())
}
