package systemtest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// TestReliabilitySubscriberServerRestart reads a stream through a server
// restart, then restarts the subscriber itself: with the durable offset
// store on the same server, the group resumes where it was, skipping
// nothing (a message may come twice: at-least-once).
func TestReliabilitySubscriberServerRestart(t *testing.T) {
	srv := dstest.Restartable(t)
	base := srv.StreamURL(dstest.StreamPath(t))
	const total = 300

	pub, err := ds.NewPublisher(ds.PublisherConfig{
		BaseURL:      base,
		ClientConfig: ds.ClientConfig{RetryPolicy: faultyRetryPolicy, RequestTimeout: time.Second},
	}, nil)
	require.NoError(t, err)
	defer pub.Close()
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			require.NoError(t, pub.Publish("orders", message.NewMessage(watermill.NewUUID(), []byte(strconv.Itoa(i)))))
		}
	}

	newSub := func() *ds.Subscriber {
		store, err := ds.NewStreamOffsetStore(ds.StreamOffsetStoreConfig{
			BaseURL:      base,
			ClientConfig: ds.ClientConfig{RetryPolicy: faultyRetryPolicy},
		})
		require.NoError(t, err)
		sub, err := ds.NewSubscriber(ds.SubscriberConfig{
			BaseURL:      base,
			Checkpoint:   "billing",
			OffsetStore:  store,
			LiveTimeout:  10 * time.Second,
			ClientConfig: ds.ClientConfig{RetryPolicy: faultyRetryPolicy},
		}, nil)
		require.NoError(t, err)
		return sub
	}

	var got []int
	consume := func(ch <-chan *message.Message, until int) {
		t.Helper()
		timeout := time.After(60 * time.Second)
		for len(got) < until {
			select {
			case msg, ok := <-ch:
				require.True(t, ok, "subscription ended early after %d messages", len(got))
				n, err := strconv.Atoi(string(msg.Payload))
				require.NoError(t, err)
				got = append(got, n)
				msg.Ack()
			case <-timeout:
				t.Fatalf("only %d of %d messages arrived", len(got), until)
			}
		}
	}

	publish(0, total/3)
	sub := newSub()
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := sub.Subscribe(ctx, "orders")
	require.NoError(t, err)
	consume(ch, total/6)

	// The server goes away while the subscription reads (and long-polls).
	require.NoError(t, srv.Restart(false))
	publish(total/3, 2*total/3)
	consume(ch, total/2)

	// The subscriber restarts; its group resumes from the stored position.
	cancel()
	require.NoError(t, sub.Close())
	publish(2*total/3, total)
	sub = newSub()
	defer sub.Close()
	ch, err = sub.Subscribe(context.Background(), "orders")
	require.NoError(t, err)

	timeout := time.After(60 * time.Second)
	for len(got) == 0 || got[len(got)-1] != total-1 {
		select {
		case msg, ok := <-ch:
			require.True(t, ok)
			n, err := strconv.Atoi(string(msg.Payload))
			require.NoError(t, err)
			got = append(got, n)
			msg.Ack()
		case <-timeout:
			t.Fatalf("the resumed subscriber did not reach the end: last %v", got[max(0, len(got)-5):])
		}
	}

	// Nothing skipped, in order; a message may repeat only at the restart.
	seen := map[int]int{}
	next := 0
	for _, n := range got {
		seen[n]++
		if seen[n] > 1 {
			continue
		}
		require.Equal(t, next, n, "message %d skipped or out of order", next)
		next++
	}
	require.Equal(t, total, next)
	t.Logf("received %d messages for %d published (%d redelivered)", len(got), total, len(got)-total)
	require.LessOrEqual(t, len(got)-total, 1, "a clean stop stores what was acked: at most the message in flight comes again")
}
