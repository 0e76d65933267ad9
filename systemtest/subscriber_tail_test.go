package systemtest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// tailStores are the two OffsetStores a position-only group may use.
var tailStores = []struct {
	name string
	make func(t *testing.T, base string) ds.OffsetStore
}{
	{"memory", func(*testing.T, string) ds.OffsetStore { return ds.NewMemoryOffsetStore() }},
	{"stream", func(t *testing.T, base string) ds.OffsetStore {
		s, err := ds.NewStreamOffsetStore(ds.StreamOffsetStoreConfig{BaseURL: base})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}},
}

// TestGroupStartFromTailStoresItsStartAtOnce: a position-only group with
// StartFromTail and no stored position stores the tail it starts from
// before Subscribe returns. A run that stops (or crashes) before its first
// commit thus leaves the next run at that tail, not at a later one that
// would skip what was published in between.
func TestGroupStartFromTailStoresItsStartAtOnce(t *testing.T) {
	for _, store := range tailStores {
		for _, stop := range []string{"close before any message", "crash before any message", "close with a message unacked"} {
			t.Run(store.name+"/"+stop, func(t *testing.T) {
				forReadModes(t, func(t *testing.T, mode ds.ReadMode) {
					base := dstest.StreamURL(t)
					offsets := store.make(t, base)
					cfg := ds.SubscriberConfig{BaseURL: base, Mode: mode, Checkpoint: "g", OffsetStore: offsets, StartFrom: ds.StartFromTail,
						HandoverTimeout: 50 * time.Millisecond, // "close with a message unacked" gives up on it at once
					}
					first := newTestSubscriber(t, cfg)
					require.NoError(t, first.SubscribeInitialize("t"))
					httpDo(t, "POST", base+"/t", "application/json", envelopes(t, newMessages(2)...)) // history: not for the group
					tail := tailOf(t, base+"/t")
					ch, err := first.Subscribe(t.Context(), "t")
					require.NoError(t, err)

					pos, ok, err := offsets.Load(t.Context(), "g", "t")
					require.NoError(t, err)
					require.True(t, ok, "the start is stored before Subscribe returns")
					require.Equal(t, ds.Position{Offset: tail}, pos)

					later := newMessages(3)
					httpDo(t, "POST", base+"/t", "application/json", envelopes(t, later...))
					switch stop {
					case "close before any message":
						require.NoError(t, first.Close())
					case "close with a message unacked":
						// Held past HandoverTimeout: the stop gives up on it.
						requireSameMessage(t, later[0], receive(t, ch))
						require.NoError(t, first.Close())
					default:
						// A crash: the first run never stores anything more. The
						// store above is all the next run has.
					}

					second := newTestSubscriber(t, cfg)
					ch, err = second.Subscribe(t.Context(), "t")
					require.NoError(t, err)
					for _, want := range later {
						got := receive(t, ch)
						requireSameMessage(t, want, got)
						got.Ack()
					}
				})
			})
		}
	}
}

// TestGroupStartFromTailOfAMissingStream: a stream that does not exist yet
// has no tail; the group stores the stream's start, so that a next run
// reads what was published after the first one stopped.
func TestGroupStartFromTailOfAMissingStream(t *testing.T) {
	base := dstest.StreamURL(t)
	offsets := ds.NewMemoryOffsetStore()
	cfg := ds.SubscriberConfig{BaseURL: base, Checkpoint: "g", OffsetStore: offsets, StartFrom: ds.StartFromTail}
	first := newTestSubscriber(t, cfg)
	_, err := first.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	require.NoError(t, first.Close())

	msgs := newMessages(2)
	httpDo(t, "PUT", base+"/t", "application/json", "")
	httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs...))
	second := newTestSubscriber(t, cfg)
	ch, err := second.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	for _, want := range msgs {
		got := receive(t, ch)
		requireSameMessage(t, want, got)
		got.Ack()
	}
}

// TestGroupStartFromTailKeepsAStoredPosition: the tail is stored only
// when the group has no position yet.
func TestGroupStartFromTailKeepsAStoredPosition(t *testing.T) {
	base := dstest.StreamURL(t)
	offsets := ds.NewMemoryOffsetStore()
	require.NoError(t, offsets.Store(t.Context(), "g", "t", ds.Position{Offset: "-1", Skip: 1}))
	cfg := ds.SubscriberConfig{BaseURL: base, Checkpoint: "g", OffsetStore: offsets, StartFrom: ds.StartFromTail}
	sub := newTestSubscriber(t, cfg)
	require.NoError(t, sub.SubscribeInitialize("t"))
	msgs := newMessages(2)
	httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs...))
	ch, err := sub.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	pos, _, err := offsets.Load(t.Context(), "g", "t")
	require.NoError(t, err)
	require.Equal(t, ds.Position{Offset: "-1", Skip: 1}, pos)
	got := receive(t, ch)
	requireSameMessage(t, msgs[1], got)
	got.Nack() // not handled: the stop does not wait for it
}

// failingLoadStore is an OffsetStore whose Load fails.
type failingLoadStore struct{ ds.OffsetStore }

func (failingLoadStore) Load(context.Context, string, string) (ds.Position, bool, error) {
	return ds.Position{}, false, errors.New("store unavailable")
}

// TestLoadErrorNamesTheGroupOnce: a failed Load says which group and
// topic once, whether the store names them itself (StreamOffsetStore) or
// not. The stream store is made to fail by a FAKE server that answers
// every request 400, which a sound reference server does not.
func TestLoadErrorNamesTheGroupOnce(t *testing.T) {
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusBadRequest)
	}))
	t.Cleanup(fake.Close)
	streamStore, err := ds.NewStreamOffsetStore(ds.StreamOffsetStoreConfig{BaseURL: fake.URL + "/v1/stream"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = streamStore.Close() })
	for name, store := range map[string]ds.OffsetStore{"stream": streamStore, "own": failingLoadStore{}} {
		t.Run(name, func(t *testing.T) {
			sub := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: dstest.StreamURL(t), Checkpoint: "g", OffsetStore: store})
			_, err := sub.Subscribe(t.Context(), "t")
			require.Error(t, err)
			require.Equal(t, 1, strings.Count(err.Error(), `load position of checkpoint "g" in "t"`), "%v", err)
		})
	}
}
