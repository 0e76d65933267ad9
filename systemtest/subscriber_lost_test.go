package systemtest

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// recreate deletes the stream and creates it again, empty.
func recreate(t testing.TB, streamURL string) {
	t.Helper()
	httpDo(t, "DELETE", streamURL, "", "")
	httpDo(t, "PUT", streamURL, "application/json", "")
}

// requireLostLogged: one Error names the group, the topic and both
// positions.
func requireLostLogged(t testing.TB, logs *capturingLogger, stored ds.Position) {
	t.Helper()
	text := logs.text()
	require.Contains(t, text, "ERROR The stream cannot honour the stored position")
	require.Contains(t, text, "checkpoint:g")
	require.Contains(t, text, "topic:t")
	require.Contains(t, text, "stored_offset:"+stored.Offset)
	require.Contains(t, text, "stream_offset:")
}

func newLoggedSubscriber(t testing.TB, cfg ds.SubscriberConfig) (*ds.Subscriber, *capturingLogger) {
	t.Helper()
	logs := newCapturingLogger()
	cfg.RetryPolicy = fastSubRetry
	sub, err := ds.NewSubscriber(cfg, logs)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Close() })
	return sub, logs
}

// TestRecreatedStreamIsReadFromItsStart: a group that consumed 200
// messages of a stream that was deleted and recreated with 20 gets those
// 20, and the loss is logged at Error.
func TestRecreatedStreamIsReadFromItsStart(t *testing.T) {
	base := dstest.StreamURL(t)
	store := ds.NewMemoryOffsetStore()
	stored := ds.Position{Offset: "-1", Skip: 200}
	require.NoError(t, store.Store(t.Context(), "g", "t", stored))
	httpDo(t, "PUT", base+"/t", "application/json", "")
	publishBacklog(t, base+"/t", 20, 5)

	sub, logs := newLoggedSubscriber(t, ds.SubscriberConfig{BaseURL: base, Checkpoint: "g", OffsetStore: store})
	drain(t, sub, "t", 20)
	requireLostLogged(t, logs, stored)
	require.Contains(t, logs.text(), "stored_skip:200")
	require.NoError(t, sub.Close())
	pos, _, err := store.Load(t.Context(), "g", "t")
	require.NoError(t, err)
	require.Equal(t, ds.Position{Offset: tailOf(t, base+"/t")}, pos, "the new stream's position replaces the lost one")
}

// TestOffsetPastTheTailIsReadFromTheStart: a stored offset beyond what a
// recreated stream holds is detected, not waited behind.
func TestOffsetPastTheTailIsReadFromTheStart(t *testing.T) {
	base := dstest.StreamURL(t)
	store := ds.NewMemoryOffsetStore()
	cfg := ds.SubscriberConfig{BaseURL: base, Checkpoint: "g", OffsetStore: store}
	first := newTestSubscriber(t, cfg)
	require.NoError(t, first.SubscribeInitialize("t"))
	publishBacklog(t, base+"/t", 50, 10)
	drain(t, first, "t", 50)
	require.NoError(t, first.Close())
	stored, _, err := store.Load(t.Context(), "g", "t")
	require.NoError(t, err)
	require.NotEqual(t, "-1", stored.Offset)

	recreate(t, base+"/t")
	publishBacklog(t, base+"/t", 3, 3)
	sub, logs := newLoggedSubscriber(t, cfg)
	drain(t, sub, "t", 3)
	requireLostLogged(t, logs, stored)
}

// TestGoneOffsetIsReadFromTheStart: 410 for the stored offset (older than
// the server keeps), or 400 (an offset the server rejects), reads what the
// stream holds from its start.
func TestGoneOffsetIsReadFromTheStart(t *testing.T) {
	for _, status := range []int{410, 400} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			srv := dstest.Faults(t)
			base := srv.StreamURL(dstest.StreamPath(t))
			store := ds.NewMemoryOffsetStore()
			httpDo(t, "PUT", base+"/t", "application/json", "")
			publishBacklog(t, base+"/t", 4, 2)
			stored := ds.Position{Offset: tailOf(t, base+"/t")}
			require.NoError(t, store.Store(t.Context(), "g", "t", stored))
			require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: base + "/t", Method: "GET", Status: status, Count: 1}))

			sub, logs := newLoggedSubscriber(t, ds.SubscriberConfig{BaseURL: base, Checkpoint: "g", OffsetStore: store})
			drain(t, sub, "t", 4)
			requireLostLogged(t, logs, stored)
		})
	}
}

// TestPositionLostStop ends the subscription and keeps the stored
// position for an operator.
func TestPositionLostStop(t *testing.T) {
	base := dstest.StreamURL(t)
	store := ds.NewMemoryOffsetStore()
	stored := ds.Position{Offset: "-1", Skip: 200}
	require.NoError(t, store.Store(t.Context(), "g", "t", stored))
	httpDo(t, "PUT", base+"/t", "application/json", "")
	publishBacklog(t, base+"/t", 20, 5)

	sub, logs := newLoggedSubscriber(t, ds.SubscriberConfig{BaseURL: base, Checkpoint: "g", OffsetStore: store, OnPositionLost: ds.PositionLostStop})
	ch, err := sub.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	requireClosed(t, ch)
	requireLostLogged(t, logs, stored)
	pos, _, err := store.Load(t.Context(), "g", "t")
	require.NoError(t, err)
	require.Equal(t, stored, pos)

	// FromTail goes on with what comes next.
	sub, logs = newLoggedSubscriber(t, ds.SubscriberConfig{BaseURL: base, Checkpoint: "g", OffsetStore: store, OnPositionLost: ds.PositionLostFromTail})
	ch, err = sub.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return strings.Contains(logs.text(), "going on from its tail") }, 10*time.Second, 5*time.Millisecond)
	fresh := newMessages(1)
	httpDo(t, "POST", base+"/t", "application/json", envelopes(t, fresh...))
	requireSameMessage(t, fresh[0], receive(t, ch))
}

// TestPositionLostFromTailStoresTheTailAtOnce: the tail a lost position
// is replaced with is stored before anything is delivered, not within
// CommitInterval: a run that crashed before its next commit would
// otherwise leave the lost position, and the next run would go on from a
// later tail, skipping what was published in between.
func TestPositionLostFromTailStoresTheTailAtOnce(t *testing.T) {
	base := dstest.StreamURL(t)
	store := ds.NewMemoryOffsetStore()
	require.NoError(t, store.Store(t.Context(), "g", "t", ds.Position{Offset: "-1", Skip: 200}))
	httpDo(t, "PUT", base+"/t", "application/json", "")
	publishBacklog(t, base+"/t", 20, 5)
	tail := tailOf(t, base+"/t")
	cfg := ds.SubscriberConfig{BaseURL: base, Checkpoint: "g", OffsetStore: store, OnPositionLost: ds.PositionLostFromTail, CommitInterval: time.Hour}
	crashed, _ := newLoggedSubscriber(t, cfg)
	_, err := crashed.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		pos, _, _ := store.Load(t.Context(), "g", "t")
		return pos == ds.Position{Offset: tail}
	}, 10*time.Second, 5*time.Millisecond, "the tail is stored with no commit due")

	// The first run never stores anything more (a crash); the next goes on
	// from the tail it stored.
	fresh := newMessages(2)
	httpDo(t, "POST", base+"/t", "application/json", envelopes(t, fresh...))
	next, _ := newLoggedSubscriber(t, cfg)
	ch, err := next.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	for _, want := range fresh {
		got := receive(t, ch)
		requireSameMessage(t, want, got)
		got.Ack()
	}
}
