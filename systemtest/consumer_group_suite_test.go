package systemtest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// TestGroupPubSub runs the universal suite against Subscribers of a sharing
// ConsumerGroup (no OffsetStore):
// Features.ConsumerGroups now means what it means for the other Pub/Subs
// (one member of a group per message).
func TestGroupPubSub(t *testing.T) {
	if testing.Short() {
		t.Skip("the whole universal suite")
	}
	base := dstest.StreamURL(t)
	features := tests.Features{
		ConsumerGroups:                      true,
		ExactlyOnceDelivery:                 false,
		GuaranteedOrder:                     true,
		GuaranteedOrderWithSingleSubscriber: true,
		Persistent:                          true,
	}
	n := 0
	var mu sync.Mutex
	constructor := func(t *testing.T, groupName string) (message.Publisher, message.Subscriber) {
		mu.Lock()
		n++
		id := fmt.Sprintf("m%d", n)
		mu.Unlock()
		pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base}, nil)
		require.NoError(t, err)
		sub, err := ds.NewSubscriber(ds.SubscriberConfig{
			BaseURL: base, ConsumerGroup: groupName,
			NackResendDelay: 10 * time.Millisecond, CommitInterval: 50 * time.Millisecond,
			MemberID: id, SessionTimeout: 2 * time.Second, HeartbeatInterval: 200 * time.Millisecond,
		}, nil)
		require.NoError(t, err)
		return pub, sub
	}
	tests.TestPubSub(t, features,
		func(t *testing.T) (message.Publisher, message.Subscriber) { return constructor(t, "default") },
		constructor,
	)
}

// TestGroupPubSubReconnect is TestPubSubReconnect for a group of two
// Subscribers sharing a 4-partition topic: 10,000 messages from 100
// publishers while the (file-backed) server is restarted twice; every
// message must arrive.
func TestGroupPubSubReconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 messages through two server restarts")
	}
	srv := dstest.Restartable(t)
	base := srv.URL + "/v1/stream"
	const topic, total, publishers = "reconnect", 10_000, 100
	pub := partitionedPublisher(t, base, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	received := make(chan string, total*2)
	for _, id := range []string{"a", "b"} {
		sub := groupSubscriber(t, base, "default", id, 4)
		require.NoError(t, sub.SubscribeInitialize(topic))
		msgs, err := sub.Subscribe(ctx, topic)
		require.NoError(t, err)
		go func() {
			for msg := range msgs {
				received <- msg.UUID
				msg.Ack()
			}
		}()
	}
	sent := make(chan string, total)
	next := make(chan int)
	var restarts sync.WaitGroup
	go func() {
		defer close(next)
		for i := range total {
			if i == total/3 || i == total/2 {
				restarts.Wait() // one restart at a time: both would bind the port
				restarts.Add(1)
				go func() {
					defer restarts.Done()
					assert.NoError(t, srv.Restart(false))
				}()
			}
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	var publishing sync.WaitGroup
	var lastErr atomic.Value // of a Publish, for the failure message
	lastErr.Store("")
	defer func() { cancel(); publishing.Wait() }() // no publisher outlives the test
	for range publishers {
		publishing.Add(1)
		go func() {
			defer publishing.Done()
			for i := range next {
				if ctx.Err() != nil {
					return
				}
				msg := keyed("k"+strconv.Itoa(i%50), i)
				for try := 0; ; try++ {
					err := pub.Publish(topic, msg)
					if err == nil {
						break
					}
					lastErr.Store(err.Error())
					if ctx.Err() != nil {
						return
					}
					if try == 100 {
						t.Errorf("message %s keeps failing: %v", msg.UUID, err)
						return
					}
					time.Sleep(100 * time.Millisecond) // a backoff, not a synchronisation
				}
				sent <- msg.UUID
			}
		}()
	}
	got := map[string]bool{}
	timeout := time.After(2 * time.Minute)
	for len(got) < total {
		select {
		case id := <-received:
			got[id] = true
		case <-timeout:
			cancel()
			t.Fatalf("received %d of %d messages; last Publish error: %v", len(got), total, lastErr.Load())
		}
	}
	publishing.Wait()
	restarts.Wait()
	close(sent)
	for id := range sent {
		require.True(t, got[id], "published message %s never arrived", id)
	}
}
