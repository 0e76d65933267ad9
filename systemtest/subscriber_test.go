package systemtest

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

func forReadModes(t *testing.T, f func(t *testing.T, mode ds.ReadMode)) {
	t.Run("long-poll", func(t *testing.T) { f(t, ds.ReadLongPoll) })
	t.Run("sse", func(t *testing.T) { f(t, ds.ReadSSE) })
}

func TestSubscribeDeliversInOrderThenEOF(t *testing.T) {
	forReadModes(t, func(t *testing.T, mode ds.ReadMode) {
		base := dstest.StreamURL(t)
		sub := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: base, Mode: mode})
		require.NoError(t, sub.SubscribeInitialize("orders"))
		msgs := newMessages(5)
		httpDo(t, "POST", base+"/orders", "application/json", envelopes(t, msgs[:2]...))

		ch, err := sub.Subscribe(t.Context(), "orders")
		require.NoError(t, err)
		for _, want := range msgs[:2] {
			got := receive(t, ch)
			requireSameMessage(t, want, got)
			got.Ack()
		}
		// Live: appended after the subscription caught up; the last batch
		// also closes the stream.
		httpDo(t, "POST", base+"/orders", "application/json", envelopes(t, msgs[2]))
		httpDo(t, "POST", base+"/orders", "application/json", envelopes(t, msgs[3:]...), "Stream-Closed", "true")
		for _, want := range msgs[2:] {
			got := receive(t, ch)
			requireSameMessage(t, want, got)
			got.Ack()
		}
		requireClosed(t, ch)
	})
}

func TestSubscribeOneAtATimeAndNack(t *testing.T) {
	base := dstest.StreamURL(t)
	sub := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: base, NackResendDelay: 10 * time.Millisecond})
	require.NoError(t, sub.SubscribeInitialize("t"))
	msgs := newMessages(2)
	httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs...))

	ch, err := sub.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	first := receive(t, ch)
	requireSilent(t, ch, 100*time.Millisecond) // nothing before the ack
	first.Nack()
	select {
	case <-first.Context().Done():
	case <-time.After(time.Second):
		t.Fatal("message context not cancelled after Nack")
	}
	again := receive(t, ch)
	requireSameMessage(t, msgs[0], again)
	again.Ack()
	requireSameMessage(t, msgs[1], receive(t, ch))
}

func TestSubscribeStartFromTail(t *testing.T) {
	base := dstest.StreamURL(t)
	sub := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: base, StartFrom: ds.StartFromTail})
	require.NoError(t, sub.SubscribeInitialize("t"))
	msgs := newMessages(2)
	httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs[0]))
	ch, err := sub.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	requireSilent(t, ch, 300*time.Millisecond) // lets the read learn the tail
	httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs[1]))
	requireSameMessage(t, msgs[1], receive(t, ch))
}

func TestSubscribeWaitsForMissingStream(t *testing.T) {
	base := dstest.StreamURL(t)
	sub := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: base, StartFrom: ds.StartFromTail})
	ch, err := sub.Subscribe(t.Context(), "later")
	require.NoError(t, err)
	msgs := newMessages(1)
	httpDo(t, "PUT", base+"/later", "application/json", "")
	httpDo(t, "POST", base+"/later", "application/json", envelopes(t, msgs...))
	requireSameMessage(t, msgs[0], receive(t, ch))
}

func TestSubscribeRejectsBadTopics(t *testing.T) {
	sub := newTestSubscriber(t, ds.SubscriberConfig{})
	for _, topic := range []string{"", ".", "..", "a/b", `a\b`, "a\x00"} {
		_, err := sub.Subscribe(t.Context(), topic)
		require.ErrorIs(t, err, ds.ErrInvalidTopic, "topic %q", topic)
		var ite *ds.InvalidTopicError
		require.ErrorAs(t, err, &ite)
		require.ErrorIs(t, sub.SubscribeInitialize(topic), ds.ErrInvalidTopic)
	}
}

func TestSubscriberConfigValidation(t *testing.T) {
	for name, cfg := range map[string]ds.SubscriberConfig{
		"no base":              {},
		"bad scheme":           {BaseURL: "ftp://x"},
		"member with store":    {BaseURL: "http://x", Checkpoint: "g", OffsetStore: ds.NewMemoryOffsetStore(), MemberID: "m"},
		"partitions, no group": {BaseURL: "http://x", Partitions: 2},
		"slow heartbeat":       {BaseURL: "http://x", ConsumerGroup: "g", SessionTimeout: time.Second, HeartbeatInterval: time.Second},
		"bad member id":        {BaseURL: "http://x", ConsumerGroup: "g", MemberID: "a/b"},
		"bytes without split":  {BaseURL: "http://x", ContentType: "text/plain", Unmarshaler: ds.JSONMarshaler{}},
		"negative delay":       {BaseURL: "http://x", NackResendDelay: -1},
		"bad mode":             {BaseURL: "http://x", Mode: 7},
		"expiry passed":        {BaseURL: "http://x", StreamExpiresAt: time.Now().Add(-time.Minute)},
	} {
		_, err := ds.NewSubscriber(cfg, nil)
		require.ErrorIs(t, err, ds.ErrInvalidConfig, name)
	}
}

func TestSubscribeAfterCloseAndDoubleClose(t *testing.T) {
	sub := newTestSubscriber(t, ds.SubscriberConfig{})
	require.NoError(t, sub.Close())
	require.NoError(t, sub.Close())
	_, err := sub.Subscribe(t.Context(), "t")
	require.ErrorIs(t, err, ds.ErrSubscriberClosed)
}

func TestCloseWhileMessageUnacked(t *testing.T) {
	forReadModes(t, func(t *testing.T, mode ds.ReadMode) {
		base := dstest.StreamURL(t) // starts the shared server first
		before := runtime.NumGoroutine()
		sub := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: base, Mode: mode})
		require.NoError(t, sub.SubscribeInitialize("a"))
		require.NoError(t, sub.SubscribeInitialize("b"))
		httpDo(t, "POST", base+"/a", "application/json", envelopes(t, newMessages(2)...))
		chA, err := sub.Subscribe(t.Context(), "a")
		require.NoError(t, err)
		chB, err := sub.Subscribe(t.Context(), "b") // idle, long-polling
		require.NoError(t, err)
		msg := receive(t, chA)

		start := time.Now()
		require.NoError(t, sub.Close())
		require.Less(t, time.Since(start), 2*time.Second, "Close is prompt")
		select {
		case <-msg.Context().Done():
		default:
			t.Fatal("message context not cancelled by Close")
		}
		requireClosed(t, chA)
		requireClosed(t, chB)
		dstest.RequireGoroutinesBackTo(t, before)
	})
}

func TestSubscribeContextCancelClosesChannel(t *testing.T) {
	base := dstest.StreamURL(t)
	client, signal := newLiveSignal()
	sub := newTestSubscriber(t, ds.SubscriberConfig{
		BaseURL:      base,
		ClientConfig: ds.ClientConfig{HTTPClient: client},
	})
	require.NoError(t, sub.SubscribeInitialize("t"))
	httpDo(t, "POST", base+"/t", "application/json", envelopes(t, newMessages(3)...))

	ctx, cancel := context.WithCancel(t.Context())
	ch, err := sub.Subscribe(ctx, "t")
	require.NoError(t, err)
	// Nobody reads: once the catch-up is read and the live read has begun,
	// the subscription waits to hand over its first message.
	<-signal.live
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			// The hand-over may have won the race with cancel; the next
			// receive must see the close.
			_, ok = <-ch
			require.False(t, ok)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("channel not closed after cancel")
	}
}

// TestPoisonMessageStopsByDefault: the default never moves a group's
// position past a message nobody handled: the subscription ends before
// it, logged at Error with its offset, and so does the next Subscribe.
func TestPoisonMessageStopsByDefault(t *testing.T) {
	base := dstest.StreamURL(t)
	store := ds.NewMemoryOffsetStore()
	logs := newCapturingLogger()
	cfg := ds.SubscriberConfig{BaseURL: base, Checkpoint: "g", OffsetStore: store}
	cfg.RetryPolicy = fastSubRetry
	sub, err := ds.NewSubscriber(cfg, logs)
	require.NoError(t, err)
	defer sub.Close()
	require.NoError(t, sub.SubscribeInitialize("t"))
	msgs := newMessages(2)
	httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs[0]))
	httpDo(t, "POST", base+"/t", "application/json", `[{"raw":"not an envelope"}]`)
	httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs[1]))
	ch, err := sub.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	got := receive(t, ch)
	requireSameMessage(t, msgs[0], got)
	got.Ack()
	requireClosed(t, ch)
	pos, ok, err := store.Load(t.Context(), "g", "t")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, ds.Position{Offset: "-1", Skip: 1}, pos, "acked the envelope, not the poison")

	ch, err = sub.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	requireClosed(t, ch) // the poison again: nothing after it is delivered
	text := logs.text()
	require.Contains(t, text, "ERROR")
	require.Contains(t, text, "does not unmarshal")
	require.Contains(t, text, "OnUnmarshalError")
}

// TestPoisonMessageSkippedOnRequest: a hook that returns nil skips.
func TestPoisonMessageSkippedOnRequest(t *testing.T) {
	base := dstest.StreamURL(t)
	var skipped int
	sub := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: base, OnUnmarshalError: func(string, []byte, error) error {
		skipped++
		return nil
	}})
	require.NoError(t, sub.SubscribeInitialize("t"))
	msgs := newMessages(2)
	httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs[0]))
	httpDo(t, "POST", base+"/t", "application/json", `[{"raw":"not an envelope"}]`)
	httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs[1]))
	ch, err := sub.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	for _, want := range msgs {
		got := receive(t, ch)
		requireSameMessage(t, want, got)
		got.Ack()
	}
	require.Equal(t, 1, skipped)
}

func TestPoisonMessageHookStopsAndKeepsPosition(t *testing.T) {
	base := dstest.StreamURL(t)
	store := ds.NewMemoryOffsetStore()
	var poison []byte
	stop := errors.New("stop here")
	cfg := ds.SubscriberConfig{BaseURL: base, Checkpoint: "g", OffsetStore: store,
		OnUnmarshalError: func(topic string, data []byte, err error) error {
			poison = append([]byte(nil), data...)
			require.ErrorIs(t, err, ds.ErrInvalidEnvelope)
			return stop
		}}
	sub := newTestSubscriber(t, cfg)
	require.NoError(t, sub.SubscribeInitialize("t"))
	msgs := newMessages(2)
	httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs[0])[:len(envelopes(t, msgs[0]))-1]+`,7]`)
	httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs[1]))
	ch, err := sub.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	got := receive(t, ch)
	requireSameMessage(t, msgs[0], got)
	got.Ack()
	requireClosed(t, ch)
	require.Equal(t, "7", string(poison))

	pos, ok, err := store.Load(t.Context(), "g", "t")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, ds.Position{Offset: "-1", Skip: 1}, pos, "acked the envelope, not the poison")
}

func TestMessagesAreIndependentAcrossNack(t *testing.T) {
	// A nacked message comes back as a new *message.Message: Watermill
	// messages can be acked or nacked only once.
	base := dstest.StreamURL(t)
	sub := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: base, NackResendDelay: time.Millisecond})
	require.NoError(t, sub.SubscribeInitialize("t"))
	httpDo(t, "POST", base+"/t", "application/json", envelopes(t, newMessages(1)...))
	ch, err := sub.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	seen := map[*message.Message]bool{}
	for range 3 {
		m := receive(t, ch)
		require.False(t, seen[m])
		seen[m] = true
		m.Nack()
	}
}
