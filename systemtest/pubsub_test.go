package systemtest

import (
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// pubSubFeatures is what the backend really does; see the README.
var pubSubFeatures = tests.Features{
	ConsumerGroups:                      true,
	ExactlyOnceDelivery:                 false,
	GuaranteedOrder:                     true,
	GuaranteedOrderWithSingleSubscriber: true,
	Persistent:                          true,
	// Every constructor below subscribes in a consumer group, which
	// resumes after its acked messages; see TestPubSubNewSubscriberReceivesOldMessages
	// for subscribers without a group.
	NewSubscriberReceivesOldMessages: false,
}

// pubSubFactory makes a Publisher and a Subscriber; in a group, the
// Subscriber shares the work with the group's other members, or, with a
// store, reads alone as a Checkpoint kept there (TestPubSubReconnect).
type pubSubFactory struct {
	base  string
	store ds.OffsetStore
}

func newPubSubFactory(t *testing.T) *pubSubFactory {
	return &pubSubFactory{base: dstest.StreamURL(t)}
}

func (f *pubSubFactory) withGroup(t *testing.T, group string) (message.Publisher, message.Subscriber) {
	logger := watermill.NopLogger{}
	pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: f.base}, logger)
	require.NoError(t, err)
	cfg := ds.SubscriberConfig{
		BaseURL:         f.base,
		NackResendDelay: 10 * time.Millisecond,
		CommitInterval:  50 * time.Millisecond,
	}
	switch {
	case group != "" && f.store != nil: // one reader that resumes at its stored position
		cfg.Checkpoint, cfg.OffsetStore = group, f.store
	case group != "": // the group shares the work: one member per message
		cfg.ConsumerGroup = group
		cfg.SessionTimeout, cfg.HeartbeatInterval = 2*time.Second, 200*time.Millisecond
	}
	sub, err := ds.NewSubscriber(cfg, logger)
	require.NoError(t, err)
	return pub, sub
}

func TestPubSub(t *testing.T) {
	f := newPubSubFactory(t)
	tests.TestPubSub(t, pubSubFeatures,
		func(t *testing.T) (message.Publisher, message.Subscriber) { return f.withGroup(t, "default") },
		f.withGroup,
	)
}

// TestPubSubNewSubscriberReceivesOldMessages: without a consumer group
// every Subscribe starts at the beginning of the stream.
func TestPubSubNewSubscriberReceivesOldMessages(t *testing.T) {
	f := newPubSubFactory(t)
	features := pubSubFeatures
	features.NewSubscriberReceivesOldMessages = true
	tests.TestNewSubscriberReceivesOldMessages(t, tests.TestContext{TestID: tests.NewTestID(), Features: features},
		func(t *testing.T) (message.Publisher, message.Subscriber) { return f.withGroup(t, "") })
}

// TestPubSubReconnect is the universal suite's reconnect test, without its
// races: 10,000 messages from 100 publishers while the (file-backed)
// server is restarted twice; every message must arrive. The suite's own
// TestReconnect (run with Features.RestartServiceCommand) reads its record
// of published messages while publisher goroutines still append to it
// (test_pubsub.go in watermill v1.5.1: the race detector reports it), and a
// backend that delivers within a millisecond of the ack delivers the last
// message before its Publish has been recorded (seen here: 10,000
// received, 9,999 recorded), so it cannot pass reliably against this one.
func TestPubSubReconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 messages through two server restarts")
	}
	srv := dstest.Restartable(t)
	base := srv.URL + "/v1/stream"
	store, err := ds.NewStreamOffsetStore(ds.StreamOffsetStoreConfig{BaseURL: base})
	require.NoError(t, err)
	f := &pubSubFactory{base: base, store: store}
	pub, sub := f.withGroup(t, "default")
	defer func() {
		require.NoError(t, pub.Close())
		require.NoError(t, sub.Close())
	}()
	const topic, total, publishers = "reconnect", 10_000, 100
	require.NoError(t, sub.(message.SubscribeInitializer).SubscribeInitialize(topic))
	messages, err := sub.Subscribe(t.Context(), topic)
	require.NoError(t, err)

	sent := make(chan string, total)
	next := make(chan int)
	var restarts sync.WaitGroup
	go func() {
		defer close(next)
		for i := range total {
			if i == total/3 || i == total/2 {
				// One restart at a time: a second Restart while the
				// first is starting the server finds it stopped and
				// starts another on the same port (EADDRINUSE).
				restarts.Wait()
				restarts.Add(1)
				go func() {
					defer restarts.Done()
					assert.NoError(t, srv.Restart(false))
				}()
			}
			next <- i
		}
	}()
	var publishing sync.WaitGroup
	for range publishers {
		publishing.Add(1)
		go func() {
			defer publishing.Done()
			for range next {
				msg := message.NewMessage(watermill.NewUUID(), []byte("x"))
				// A failed Publish may have written the message; the suite
				// publishes it again, and so does this test: the message
				// then arrives once or twice, never zero times.
				for try := 0; pub.Publish(topic, msg) != nil; try++ {
					if !assert.Less(t, try, 100, "message %s keeps failing", msg.UUID) {
						return
					}
					time.Sleep(100 * time.Millisecond) // a backoff, not a synchronisation
				}
				sent <- msg.UUID
			}
		}()
	}

	received := map[string]bool{}
	timeout := time.After(2 * time.Minute)
	for len(received) < total {
		select {
		case msg := <-messages:
			received[msg.UUID] = true
			msg.Ack()
		case <-timeout:
			t.Fatalf("received %d of %d messages", len(received), total)
		}
	}
	publishing.Wait()
	restarts.Wait()
	close(sent)
	for uuid := range sent {
		require.True(t, received[uuid], "published message %s never arrived", uuid)
	}
}
