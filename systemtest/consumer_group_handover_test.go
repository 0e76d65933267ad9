package systemtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// TestGroupHandoverWaitsForTheMessageInHand: a rebalance that moves a
// stream while its owner's handler holds a message (nobody crashes) hands
// the stream over only once that message is acked: the message keeps its
// context, its ack counts, and the next owner starts after it, so no
// message is ever in two members' hands.
func TestGroupHandoverWaitsForTheMessageInHand(t *testing.T) {
	base := dstest.StreamURL(t)
	const topic = "handover"
	pub := partitionedPublisher(t, base, 0)

	logs := newCapturingLogger()
	// "m2" owns the stream alone; "m1" sorts first, so its join moves the
	// stream to it.
	old, oldMsgs := loggedMember(t, base, topic, "m2", 2*time.Second, logs)
	t.Cleanup(func() { assert.NoError(t, old.Close()) })
	inHand := publishAndReceive(t, pub, topic, oldMsgs)

	newer := groupSubscriber(t, base, "g", "m1", 0)
	newMsgs, err := newer.Subscribe(t.Context(), topic)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return strings.Contains(logs.text(), "Consumer group rebalance: handing a stream over")
	}, 20*time.Second, 10*time.Millisecond, "the stream was never handed over")

	require.NoError(t, inHand.Context().Err(), "a handover cancelled the message in the handler's hands")
	inHand.Ack()
	second := message.NewMessage(watermill.NewUUID(), []byte(`{"n":2}`))
	require.NoError(t, pub.Publish(topic, second))

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	select {
	case got := <-newMsgs:
		got.Ack()
		assert.Equal(t, second.UUID, got.UUID, "the next owner got the message the old owner had in hand (and acked)")
	case <-ctx.Done():
		t.Fatal("the next owner got nothing")
	}
}

// loggedMember subscribes a member of group "g" to topic, logging to logs.
func loggedMember(t *testing.T, base, topic, member string, session time.Duration, logs *capturingLogger) (*ds.Subscriber, <-chan *message.Message) {
	t.Helper()
	sub, err := ds.NewSubscriber(ds.SubscriberConfig{
		BaseURL: base, ConsumerGroup: "g", MemberID: member,
		CommitInterval: 50 * time.Millisecond, SessionTimeout: session, HeartbeatInterval: 200 * time.Millisecond,
	}, logs)
	require.NoError(t, err)
	msgs, err := sub.Subscribe(t.Context(), topic)
	require.NoError(t, err)
	return sub, msgs
}

// publishAndReceive publishes one message and returns it as msgs delivers
// it, unacked.
func publishAndReceive(t *testing.T, pub *ds.Publisher, topic string, msgs <-chan *message.Message) *message.Message {
	t.Helper()
	sent := message.NewMessage(watermill.NewUUID(), []byte(`{"n":1}`))
	require.NoError(t, pub.Publish(topic, sent))
	select {
	case got := <-msgs:
		require.Equal(t, sent.UUID, got.UUID)
		return got
	case <-time.After(20 * time.Second):
		t.Fatal("the owner got no message")
	}
	return nil
}
