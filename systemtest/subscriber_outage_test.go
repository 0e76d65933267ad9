package systemtest

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

// timeout is a channel closed after d, for waits that must not hang a
// failing test.
func timeout(t *testing.T, d time.Duration) <-chan struct{} {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx.Done()
}

// TestSubscribeToAServerThatIsNotThere: a Subscribe that needs nothing
// from the server to start (long-poll or SSE from the beginning) returns
// its channel at once and keeps trying, with the first failed read logged
// at Error (URL and cause); one that must ask the server where to start
// (StartFromTail, a StreamOffsetStore) fails within
// RetryPolicy.MaxUnreachable with ErrServerUnreachable, the first failed
// request logged at once. Before, nothing was logged and three of these
// blocked for minutes.
func TestSubscribeToAServerThatIsNotThere(t *testing.T) {
	short := retry.Policy{InitialBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, MaxUnreachable: 500 * time.Millisecond}
	for _, c := range []struct {
		name     string
		cfg      ds.SubscriberConfig
		startErr bool
	}{
		{name: "long-poll", cfg: ds.SubscriberConfig{}},
		{name: "SSE", cfg: ds.SubscriberConfig{Mode: ds.ReadSSE}},
		{name: "StartFromTail", cfg: ds.SubscriberConfig{StartFrom: ds.StartFromTail}, startErr: true},
		{name: "position store", cfg: ds.SubscriberConfig{Checkpoint: "g"}, startErr: true},
		{name: "sharing group", cfg: ds.SubscriberConfig{ConsumerGroup: "g"}, startErr: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := closedPortURL(t)
			cfg := c.cfg
			cfg.BaseURL = base
			cfg.RetryPolicy = short
			if cfg.Checkpoint != "" {
				store, err := ds.NewStreamOffsetStore(ds.StreamOffsetStoreConfig{BaseURL: base, ClientConfig: ds.ClientConfig{RetryPolicy: short}})
				require.NoError(t, err)
				cfg.OffsetStore = store
			}
			logs := newLogRecorder()
			sub, err := ds.NewSubscriber(cfg, logs)
			require.NoError(t, err)
			defer sub.Close()
			began := time.Now()
			ch, err := sub.Subscribe(t.Context(), "orders")
			took := time.Since(began)
			if c.startErr {
				require.ErrorIs(t, err, ds.ErrServerUnreachable)
				require.NotErrorIs(t, err, ds.ErrSubscriberClosed)
				require.ErrorContains(t, err, "connection refused")
			} else {
				require.NoError(t, err)
				require.NotNil(t, ch)
			}
			assert.Less(t, took, 5*time.Second, "bounded by MaxUnreachable")
			line, ok := logs.wait(timeout(t, 10*time.Second), "ERROR", "Durable Streams server unreachable")
			require.True(t, ok, "no Error line:\n%s", logs)
			want := base + "/orders"
			if c.cfg.ConsumerGroup != "" {
				want += ".partitions" // a group reads the topic's partition record first
			}
			assert.Equal(t, want, line.Fields["stream_url"])
			require.ErrorContains(t, line.Err, "connection refused")
			require.NoError(t, sub.Close())
			if ch != nil {
				for range ch {
				}
			}
		})
	}
}

// TestSubscribeWithDefaultsToAServerThatIsNotThereIsBounded: with default
// settings, a StartFromTail Subscribe against a closed port returns
// ErrServerUnreachable within about 10s.
func TestSubscribeWithDefaultsToAServerThatIsNotThereIsBounded(t *testing.T) {
	t.Parallel() // waits out the default 10s
	base := closedPortURL(t)
	sub, err := ds.NewSubscriber(ds.SubscriberConfig{BaseURL: base, StartFrom: ds.StartFromTail}, nil)
	require.NoError(t, err)
	defer sub.Close()
	began := time.Now()
	_, err = sub.Subscribe(t.Context(), "orders")
	took := time.Since(began)
	require.ErrorIs(t, err, ds.ErrServerUnreachable)
	require.ErrorContains(t, err, base+"/orders")
	assert.Less(t, took, 12*time.Second)
	t.Logf("defaults, StartFromTail Subscribe against a closed port: error after %s", took.Round(time.Millisecond))
}

// TestStartFromTailWhileTheServerIsDownStartsWhenItAnswers: a
// StartFromTail Subscribe made while the server is down waits for it (up
// to MaxUnreachable), takes the tail it shows at its first answer, and
// says so at Error (messages appended before that are not delivered);
// what is published afterwards is delivered, what was there before is
// not. Before, the tail was taken seconds after the server came back,
// without a word.
func TestStartFromTailWhileTheServerIsDownStartsWhenItAnswers(t *testing.T) {
	srv := dstest.Restartable(t)
	base := srv.StreamURL(dstest.StreamPath(t))
	pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base}, nil)
	require.NoError(t, err)
	defer pub.Close()
	require.NoError(t, pub.Publish("orders", message.NewMessage(watermill.NewUUID(), []byte(`"old"`))))
	require.NoError(t, srv.Kill())

	logs := newLogRecorder()
	sub, err := ds.NewSubscriber(ds.SubscriberConfig{BaseURL: base, StartFrom: ds.StartFromTail,
		ClientConfig: ds.ClientConfig{RetryPolicy: retry.Policy{InitialBackoff: 50 * time.Millisecond, MaxBackoff: 5 * time.Second, MaxUnreachable: time.Minute}}}, logs)
	require.NoError(t, err)
	defer sub.Close()
	type subscribed struct {
		ch  <-chan *message.Message
		err error
	}
	done := make(chan subscribed, 1)
	go func() {
		ch, err := sub.Subscribe(t.Context(), "orders")
		done <- subscribed{ch, err}
	}()
	_, ok := logs.wait(timeout(t, 10*time.Second), "ERROR", "Durable Streams server unreachable")
	require.True(t, ok, "the outage is logged:\n%s", logs)
	up := time.Now()
	require.NoError(t, srv.Restart(false))
	got := <-done
	require.NoError(t, got.err)
	t.Logf("the tail was taken %s after the server was started again", time.Since(up).Round(time.Millisecond))
	notice := logs.find("ERROR", "StartFromTail starts at the tail it showed when it answered again")
	require.Len(t, notice, 1, "%s", logs)
	t.Logf("%s", notice[0])
	assert.Equal(t, base+"/orders", notice[0].Fields["stream_url"])
	assert.NotEmpty(t, notice[0].Fields["offset"])
	_, ok = logs.wait(timeout(t, 10*time.Second), "INFO", "Durable Streams server answers again")
	require.True(t, ok)

	require.NoError(t, pub.Publish("orders", message.NewMessage(watermill.NewUUID(), []byte(`"new"`))))
	msg := receive(t, got.ch)
	assert.Equal(t, `"new"`, string(msg.Payload))
	msg.Ack()
}

// TestRestartedServerThatLostTheStreamIsNoticed: a plain subscription
// whose in-memory server restarted empty sees its stream missing after
// the outage, logs at Error that its position is lost and follows
// OnPositionLost (read the stream again from its start, once it exists),
// so the messages of the recreated stream are all delivered. Before, it
// went on from its old offset in the new stream, skipping what lay
// before it without a word (19 of 100 in the run).
func TestRestartedServerThatLostTheStreamIsNoticed(t *testing.T) {
	for _, mode := range []ds.ReadMode{ds.ReadLongPoll, ds.ReadSSE} {
		t.Run(map[ds.ReadMode]string{ds.ReadLongPoll: "long-poll", ds.ReadSSE: "SSE"}[mode], func(t *testing.T) {
			srv := dstest.Private(t, dstest.Options{})
			base := srv.StreamURL(dstest.StreamPath(t))
			publish := func(pub *ds.Publisher, from, n int) {
				t.Helper()
				for i := from; i < from+n; i++ {
					require.NoError(t, pub.Publish("orders", message.NewMessage(watermill.NewUUID(), []byte{byte('0' + i)})))
				}
			}
			pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base, Marshaler: ds.LinesMarshaler{}}, nil)
			require.NoError(t, err)
			publish(pub, 0, 5)
			require.NoError(t, pub.Close())

			logs := newLogRecorder()
			sub, err := ds.NewSubscriber(ds.SubscriberConfig{BaseURL: base, Mode: mode, Unmarshaler: ds.LinesMarshaler{}}, logs)
			require.NoError(t, err)
			defer sub.Close()
			ch, err := sub.Subscribe(t.Context(), "orders")
			require.NoError(t, err)
			for i := range 5 {
				msg := receive(t, ch)
				require.Equal(t, string(rune('0'+i)), string(msg.Payload))
				msg.Ack()
			}

			require.NoError(t, srv.Kill())
			_, ok := logs.wait(timeout(t, 10*time.Second), "ERROR", "Durable Streams server unreachable")
			require.True(t, ok, "the outage is logged:\n%s", logs)
			require.NoError(t, srv.Restart(false)) // in memory: back empty
			lost, ok := logs.wait(timeout(t, 10*time.Second), "ERROR", "cannot honour the stored position")
			require.True(t, ok, "the lost position is logged:\n%s", logs)
			t.Logf("%s", lost)
			require.ErrorContains(t, lost.Err, "the stream is missing after the server could not be reached")
			assert.Equal(t, base+"/orders", lost.Fields["stream_url"])

			// The stream is created again, with fewer and then more
			// messages than before: every one is delivered.
			pub, err = ds.NewPublisher(ds.PublisherConfig{BaseURL: base, Marshaler: ds.LinesMarshaler{}}, nil)
			require.NoError(t, err)
			defer pub.Close()
			publish(pub, 0, 8)
			for i := range 8 {
				msg := receive(t, ch)
				require.Equal(t, string(rune('0'+i)), string(msg.Payload), "message %d of the new stream", i)
				msg.Ack()
			}
		})
	}
}
