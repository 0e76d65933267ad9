package systemtest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// TestConsumerGroupSameMemberIDTwiceTheOlderSubscriptionEnds: two live
// Subscribers misconfigured with one MemberID. The newer one takes every
// partition over; the older one's subscription ends (its channel closes)
// with one Error naming the MemberID, instead of the two stealing the
// partitions from each other at every epoch.
func TestConsumerGroupSameMemberIDTwiceTheOlderSubscriptionEnds(t *testing.T) {
	base := dstest.StreamURL(t)
	const topic, parts, first, total = "orders", 4, 100, 300
	pub := partitionedPublisher(t, base, parts)
	h := newHandled()
	logs := watermill.NewCaptureLogger()
	older, err := ds.NewSubscriber(ds.SubscriberConfig{
		BaseURL: base, ConsumerGroup: "g", MemberID: "same", Partitions: parts,
		SessionTimeout: 2 * time.Second, HeartbeatInterval: 200 * time.Millisecond,
		// Every ack stored: what the older one has in hand at the switch
		// is then at most a message per partition.
		CommitInterval: ds.CommitEveryAck, NackResendDelay: 10 * time.Millisecond,
	}, logs)
	require.NoError(t, err)
	msgsOld, err := older.Subscribe(context.Background(), topic)
	require.NoError(t, err)
	oldDone := h.consume(t, "older", msgsOld)
	for i := range first {
		require.NoError(t, pub.Publish(topic, keyed("k"+strconv.Itoa(i%20), i)))
	}
	h.waitDistinct(t, first, 30*time.Second)

	newer := groupSubscriber(t, base, "g", "same", parts)
	msgsNew, err := newer.Subscribe(context.Background(), topic)
	require.NoError(t, err)
	h.consume(t, "newer", msgsNew)
	ended := make(chan struct{})
	go func() { oldDone.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(20 * time.Second):
		t.Fatal("the older subscription with the same MemberID did not end")
	}
	for i := first; i < total; i++ {
		require.NoError(t, pub.Publish(topic, keyed("k"+strconv.Itoa(i%20), i)))
	}
	h.waitDistinct(t, total, 30*time.Second)
	require.NoError(t, older.Close())

	h.mu.Lock()
	defer h.mu.Unlock()
	again := 0
	for _, n := range h.times {
		again += n - 1
	}
	t.Logf("handled per instance: %v, %d again", h.by, again)
	require.LessOrEqual(t, again, parts, "more handled twice than the older instance had in hand")
	require.GreaterOrEqual(t, h.by["newer"], total-first, "the newer instance did not handle the later messages")
	errorsLogged := 0
	for _, e := range logs.Captured()[watermill.ErrorLogLevel] {
		if strings.Contains(e.Msg, "Another instance joined the consumer group with this MemberID") && e.Fields["member_id"] == "same" {
			errorsLogged++
		}
	}
	require.Equal(t, 1, errorsLogged, "the older instance must log one Error naming its MemberID")
}
