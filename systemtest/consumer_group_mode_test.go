package systemtest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// TestConsumerGroupWithAnOffsetStoreIsRefused: a ConsumerGroup with an
// OffsetStore used to mean one position that every subscription read on
// its own (each got every message). It is refused at NewSubscriber with
// a typed error naming Checkpoint, never run with another meaning.
func TestConsumerGroupWithAnOffsetStoreIsRefused(t *testing.T) {
	base := dstest.StreamURL(t)
	stores := map[string]func(t *testing.T) ds.OffsetStore{
		"memory": func(*testing.T) ds.OffsetStore { return ds.NewMemoryOffsetStore() },
		"stream": func(t *testing.T) ds.OffsetStore {
			store, err := ds.NewStreamOffsetStore(ds.StreamOffsetStoreConfig{BaseURL: base})
			require.NoError(t, err)
			return store
		},
	}
	for name, store := range stores {
		t.Run(name, func(t *testing.T) {
			sub, err := ds.NewSubscriber(ds.SubscriberConfig{BaseURL: base, ConsumerGroup: "g", OffsetStore: store(t)}, nil)
			require.ErrorIs(t, err, ds.ErrInvalidConfig)
			require.Nil(t, sub)
			require.Contains(t, err.Error(), "Checkpoint")
		})
	}
}

// TestTwoSubscribersOfOneConsumerGroupNeverBothHandleAMessage: the meaning
// of a group name in Kafka, Redis Streams, SQL and NATS JetStream. Two
// Subscribers (two replicas of a service) with one ConsumerGroup on one
// topic: 200 messages, each handled by exactly one of them.
func TestTwoSubscribersOfOneConsumerGroupNeverBothHandleAMessage(t *testing.T) {
	base := dstest.StreamURL(t)
	const n = 200
	pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base, Partitions: 2}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })

	var mu sync.Mutex
	handledBy := map[string][]string{} // message UUID → replicas
	all := make(chan struct{})
	replica := func(name string) {
		sub := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: base, ConsumerGroup: "service", Partitions: 2})
		ctx, cancel := context.WithCancel(t.Context())
		t.Cleanup(cancel)
		msgs, err := sub.Subscribe(ctx, "commands")
		require.NoError(t, err)
		go func() {
			for msg := range msgs {
				mu.Lock()
				handledBy[msg.UUID] = append(handledBy[msg.UUID], name)
				if len(handledBy) == n {
					close(all)
				}
				mu.Unlock()
				msg.Ack()
			}
		}()
	}
	replica("a")
	replica("b")
	for i := range n {
		require.NoError(t, pub.Publish("commands", keyed(keyOf(i%2, 2), i)))
	}
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		t.Fatal("not every message was handled")
	}
	mu.Lock()
	defer mu.Unlock()
	for uuid, by := range handledBy {
		require.Len(t, by, 1, "message %s handled by %v", uuid, by)
	}
}
