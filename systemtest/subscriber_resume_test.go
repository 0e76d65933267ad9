package systemtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

func TestResumeAfterRestartWithStreamOffsetStore(t *testing.T) {
	forReadModes(t, func(t *testing.T, mode ds.ReadMode) {
		base := dstest.StreamURL(t)
		// RotateEvery 2 makes the store move to new logs during the test.
		newStore := func() ds.OffsetStore {
			store, err := ds.NewStreamOffsetStore(ds.StreamOffsetStoreConfig{BaseURL: base, RotateEvery: 2})
			require.NoError(t, err)
			return store
		}
		cfg := ds.SubscriberConfig{BaseURL: base, Mode: mode, Checkpoint: "billing", OffsetStore: newStore()}
		msgs := newMessages(7)
		first := newTestSubscriber(t, cfg)
		require.NoError(t, first.SubscribeInitialize("t"))
		httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs[:3]...))
		httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs[3:5]...))

		ch, err := first.Subscribe(t.Context(), "t")
		require.NoError(t, err)
		for _, want := range msgs[:4] { // stops inside the second batch
			got := receive(t, ch)
			requireSameMessage(t, want, got)
			got.Ack()
		}
		unacked := receive(t, ch)
		requireSameMessage(t, msgs[4], unacked)
		unacked.Nack()                    // its handler failed,
		require.NoError(t, first.Close()) // then a restart: msgs[4] was never acked

		httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs[5:]...))
		cfg.OffsetStore = newStore() // a new process knows nothing in memory
		second := newTestSubscriber(t, cfg)
		ch, err = second.Subscribe(t.Context(), "t")
		require.NoError(t, err)
		for _, want := range msgs[4:] {
			got := receive(t, ch)
			requireSameMessage(t, want, got)
			got.Ack()
		}

		// Another group starts at the beginning.
		cfg.Checkpoint = "audit"
		third := newTestSubscriber(t, cfg)
		ch, err = third.Subscribe(t.Context(), "t")
		require.NoError(t, err)
		requireSameMessage(t, msgs[0], receive(t, ch))
	})
}

func TestStreamOffsetStoreLoadStore(t *testing.T) {
	base := dstest.StreamURL(t)
	store, err := ds.NewStreamOffsetStore(ds.StreamOffsetStoreConfig{BaseURL: base, RotateEvery: 3})
	require.NoError(t, err)
	_, ok, err := store.Load(t.Context(), "g", "t")
	require.NoError(t, err)
	require.False(t, ok)
	for i := range 10 {
		require.NoError(t, store.Store(t.Context(), "g", "t", ds.Position{Offset: "-1", Skip: i}))
	}
	fresh, err := ds.NewStreamOffsetStore(ds.StreamOffsetStoreConfig{BaseURL: base})
	require.NoError(t, err)
	pos, ok, err := fresh.Load(t.Context(), "g", "t")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, ds.Position{Offset: "-1", Skip: 9}, pos)

	_, _, err = store.Load(t.Context(), "a/b", "t")
	require.ErrorIs(t, err, ds.ErrInvalidConfig)
	require.ErrorIs(t, store.Store(t.Context(), "g", "..", pos), ds.ErrInvalidTopic)
}

func TestPartialFramesAcrossReads(t *testing.T) {
	forReadModes(t, func(t *testing.T, mode ds.ReadMode) {
		base := dstest.StreamURL(t)
		framed := ds.FramedMarshaler{}
		msgs := newMessages(3)
		var stream []byte
		for _, m := range msgs {
			b, err := framed.Marshal("t", m)
			require.NoError(t, err)
			stream = append(stream, b...)
		}
		// Cuts inside the first frame, inside the second, and inside the
		// third, so every read ends in the middle of a frame.
		cuts := []int{5, len(stream)/2 - 3, len(stream) / 2, len(stream) - 2, len(stream)}

		client, signal := newGetSignal()
		store := ds.NewMemoryOffsetStore()
		cfg := ds.SubscriberConfig{
			BaseURL:      base,
			Mode:         mode,
			Unmarshaler:  framed,
			Checkpoint:   "g",
			OffsetStore:  store,
			ClientConfig: ds.ClientConfig{HTTPClient: client},
		}
		sub := newTestSubscriber(t, cfg)
		require.NoError(t, sub.SubscribeInitialize("t"))
		ch, err := sub.Subscribe(t.Context(), "t")
		require.NoError(t, err)
		<-signal.gets // the catch-up read of the empty stream

		prev := 0
		next := 0
		for i, cut := range cuts {
			closing := []string{}
			if i == len(cuts)-1 {
				closing = []string{"Stream-Closed", "true"}
			}
			httpDo(t, "POST", base+"/t", "application/octet-stream", string(stream[prev:cut]), closing...)
			prev = cut
			if mode == ds.ReadLongPoll {
				select { // the long-poll that returned this piece alone
				case <-signal.gets:
				case <-time.After(10 * time.Second):
					t.Fatalf("no read after piece %d", i)
				}
			}
			// Take every message this piece completed.
			for next < len(msgs) && framesEndBy(t, framed, stream[:cut]) > next {
				got := receive(t, ch)
				requireSameMessage(t, msgs[next], got)
				got.Ack()
				next++
				if next == 1 {
					// Restart between frames: the position must name a
					// place where the next frame can be found again.
					require.NoError(t, sub.Close())
					requireClosed(t, ch)
					sub = newTestSubscriber(t, cfg)
					ch, err = sub.Subscribe(t.Context(), "t")
					require.NoError(t, err)
					for len(signal.gets) > 0 { // reads of the old subscriber
						<-signal.gets
					}
					if mode == ds.ReadLongPoll {
						<-signal.gets // the new subscriber's catch-up read
					}
				}
			}
		}
		require.Equal(t, len(msgs), next)
		requireClosed(t, ch)
	})
}

// framesEndBy counts the whole frames in data.
func framesEndBy(t testing.TB, s ds.FrameSplitter, data []byte) int {
	n := 0
	for {
		adv, frame, err := s.Split(data, false)
		require.NoError(t, err)
		if adv == 0 || frame == nil {
			return n
		}
		n++
		data = data[adv:]
	}
}
