package systemtest

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// countingStore counts the positions a subscription stores.
type countingStore struct {
	ds.OffsetStore
	stores atomic.Int64
}

func (c *countingStore) Store(ctx context.Context, group, topic string, pos ds.Position) error {
	c.stores.Add(1)
	return c.OffsetStore.Store(ctx, group, topic, pos)
}

// tailOf is the stream's current tail (HEAD).
func tailOf(t testing.TB, streamURL string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodHead, streamURL, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return resp.Header.Get("Stream-Next-Offset")
}

// publishBacklog appends n envelopes in appends of per messages.
func publishBacklog(t testing.TB, streamURL string, n, per int) {
	t.Helper()
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(`{"n":`+strconv.Itoa(i)+`}`))
	}
	for i := 0; i < n; i += per {
		httpDo(t, "POST", streamURL, "application/json", envelopes(t, msgs[i:min(i+per, n)]...))
	}
}

func drain(t testing.TB, sub *ds.Subscriber, topic string, n int) {
	t.Helper()
	ch, err := sub.Subscribe(t.Context(), topic)
	require.NoError(t, err)
	for range n {
		receive(t, ch).Ack()
	}
}

// TestGroupDrainStoresOnIntervalAndAtStop: with a CommitInterval a drain
// stores a handful of positions, not one per ack, and Close stores the end
// of the last read (skip 0), so a restart reads only what is new.
func TestGroupDrainStoresOnIntervalAndAtStop(t *testing.T) {
	base := dstest.StreamURL(t)
	store := &countingStore{OffsetStore: ds.NewMemoryOffsetStore()}
	const interval = 200 * time.Millisecond
	cfg := ds.SubscriberConfig{BaseURL: base, Checkpoint: "g", OffsetStore: store, CommitInterval: interval}
	sub := newTestSubscriber(t, cfg)
	require.NoError(t, sub.SubscribeInitialize("t"))
	const n = 500
	publishBacklog(t, base+"/t", n, 100)
	start := time.Now()
	drain(t, sub, "t", n)
	require.NoError(t, sub.Close())
	took := time.Since(start)

	// One per elapsed interval, plus the one at Close.
	limit := int64(took/interval) + 2
	require.LessOrEqual(t, store.stores.Load(), limit, "positions stored for %d acks in %s", n, took)
	pos, ok, err := store.Load(t.Context(), "g", "t")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, ds.Position{Offset: tailOf(t, base+"/t"), Skip: 0}, pos)
}

// gatedStore holds its first Store until released, and records how many
// writes were ever in flight at once.
type gatedStore struct {
	ds.OffsetStore
	release  chan struct{}
	first    atomic.Bool
	inFlight atomic.Int64
	maxIn    atomic.Int64
	stores   atomic.Int64
}

func (g *gatedStore) Store(ctx context.Context, group, topic string, pos ds.Position) error {
	n := g.inFlight.Add(1)
	defer g.inFlight.Add(-1)
	for {
		m := g.maxIn.Load()
		if n <= m || g.maxIn.CompareAndSwap(m, n) {
			break
		}
	}
	g.stores.Add(1)
	if g.first.CompareAndSwap(false, true) {
		<-g.release
	}
	return g.OffsetStore.Store(ctx, group, topic, pos)
}

// TestDefaultCommitKeepsOneWriteInFlight: by default delivery never waits
// for a position write, one write is on the wire at a time, and the next
// one carries the latest ack: while the first write hangs, the whole
// backlog is delivered, and its release costs a bounded number of writes,
// not one per ack: one carrying every ack taken in meanwhile, and at most
// two more for the moves that may come after it (the last ack, which the
// subscription takes in just after the handler gave it, and the read's
// end, skip 0), whichever lands while the previous write is on the wire.
func TestDefaultCommitKeepsOneWriteInFlight(t *testing.T) {
	base := dstest.StreamURL(t)
	store := &gatedStore{OffsetStore: ds.NewMemoryOffsetStore(), release: make(chan struct{})}
	cfg := ds.SubscriberConfig{BaseURL: base, Checkpoint: "g", OffsetStore: store}
	sub := newTestSubscriber(t, cfg)
	require.NoError(t, sub.SubscribeInitialize("t"))
	const n = 100
	publishBacklog(t, base+"/t", n, 10)
	drain(t, sub, "t", n) // all delivered while the first write hangs
	close(store.release)
	require.NoError(t, sub.Close())

	require.EqualValues(t, 1, store.maxIn.Load(), "writes in flight at once")
	require.LessOrEqual(t, store.stores.Load(), int64(4), "writes for %d acks", n)
	pos, ok, err := store.Load(t.Context(), "g", "t")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, ds.Position{Offset: tailOf(t, base+"/t"), Skip: 0}, pos)
}

// TestRestartReadsOnlyWhatIsNew: after a read was consumed, the next
// Subscribe of the group asks for what follows it, not for the stream
// from its start.
func TestRestartReadsOnlyWhatIsNew(t *testing.T) {
	base := dstest.StreamURL(t)
	store := ds.NewMemoryOffsetStore()
	cfg := ds.SubscriberConfig{BaseURL: base, Checkpoint: "g", OffsetStore: store}
	first := newTestSubscriber(t, cfg)
	require.NoError(t, first.SubscribeInitialize("t"))
	publishBacklog(t, base+"/t", 50, 10)
	drain(t, first, "t", 50)
	tail := tailOf(t, base+"/t")
	require.NoError(t, first.Close())

	fresh := newMessages(1)
	httpDo(t, "POST", base+"/t", "application/json", envelopes(t, fresh...))
	client, offsets := newOffsetRecorder()
	cfg.HTTPClient = client
	second := newTestSubscriber(t, cfg)
	ch, err := second.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	got := receive(t, ch)
	requireSameMessage(t, fresh[0], got)
	got.Ack()
	require.Equal(t, tail, <-offsets, "the first read starts at the end of the consumed read")
}

// newOffsetRecorder reports the offset of every GET.
func newOffsetRecorder() (*http.Client, chan string) {
	offsets := make(chan string, 1000)
	base := http.DefaultTransport.(*http.Transport).Clone()
	return &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method == http.MethodGet {
			select {
			case offsets <- req.URL.Query().Get("offset"):
			default:
			}
		}
		return base.RoundTrip(req)
	})}, offsets
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// TestEveryCleanStopStoresThePosition: Close, a cancelled Subscribe
// context and the end of a closed stream each store what was acked, even
// with an interval that never falls due again after its first write.
func TestEveryCleanStopStoresThePosition(t *testing.T) {
	for _, stop := range []string{"close", "cancel", "end of stream"} {
		t.Run(stop, func(t *testing.T) {
			base := dstest.StreamURL(t)
			store := &countingStore{OffsetStore: ds.NewMemoryOffsetStore()}
			cfg := ds.SubscriberConfig{BaseURL: base, Checkpoint: "g", OffsetStore: store, CommitInterval: time.Hour}
			sub := newTestSubscriber(t, cfg)
			require.NoError(t, sub.SubscribeInitialize("t"))
			closing := []string{}
			if stop == "end of stream" {
				closing = []string{"Stream-Closed", "true"}
			}
			httpDo(t, "POST", base+"/t", "application/json", envelopes(t, newMessages(10)...), closing...)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			ch, err := sub.Subscribe(ctx, "t")
			require.NoError(t, err)
			acked := 4
			if stop == "end of stream" {
				acked = 10
			}
			for range acked {
				receive(t, ch).Ack()
			}
			want := ds.Position{Offset: "-1", Skip: 4}
			switch stop {
			case "close":
				require.NoError(t, sub.Close())
			case "cancel":
				cancel()
				requireClosed(t, ch)
				require.NoError(t, sub.Close())
			default:
				requireClosed(t, ch)
				want = ds.Position{Offset: tailOf(t, base+"/t")}
			}
			pos, ok, err := store.Load(t.Context(), "g", "t")
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, want, pos)
			// The interval's leading write (the first ack), then the stop's.
			require.LessOrEqual(t, store.stores.Load(), int64(2), "writes with an interval of an hour")
		})
	}
}

// TestCommitIntervalStoresWhileIdle: a position that moved is stored
// within the interval even when nothing more arrives.
func TestCommitIntervalStoresWhileIdle(t *testing.T) {
	base := dstest.StreamURL(t)
	store := &countingStore{OffsetStore: ds.NewMemoryOffsetStore()}
	cfg := ds.SubscriberConfig{BaseURL: base, Checkpoint: "g", OffsetStore: store, CommitInterval: 50 * time.Millisecond}
	sub := newTestSubscriber(t, cfg)
	require.NoError(t, sub.SubscribeInitialize("t"))
	httpDo(t, "POST", base+"/t", "application/json", envelopes(t, newMessages(3)...))
	drain(t, sub, "t", 3)
	tail := tailOf(t, base+"/t")
	require.Eventually(t, func() bool {
		pos, _, _ := store.Load(t.Context(), "g", "t")
		return pos == ds.Position{Offset: tail}
	}, 10*time.Second, 10*time.Millisecond)
}

// TestCommitEveryAck stores before the next message is delivered.
func TestCommitEveryAck(t *testing.T) {
	base := dstest.StreamURL(t)
	store := ds.NewMemoryOffsetStore()
	cfg := ds.SubscriberConfig{BaseURL: base, Checkpoint: "g", OffsetStore: store, CommitInterval: ds.CommitEveryAck}
	sub := newTestSubscriber(t, cfg)
	require.NoError(t, sub.SubscribeInitialize("t"))
	httpDo(t, "POST", base+"/t", "application/json", envelopes(t, newMessages(3)...))
	ch, err := sub.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	for i := range 2 {
		receive(t, ch).Ack()
		next := receive(t, ch) // delivered only after the store
		pos, ok, err := store.Load(t.Context(), "g", "t")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, ds.Position{Offset: "-1", Skip: i + 1}, pos, "after ack "+strconv.Itoa(i))
		next.Nack()
	}
}
