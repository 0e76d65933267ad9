package systemtest

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/partition"
)

// handingOver finds the streams named in "handing a stream over" lines.
var handingOver = regexp.MustCompile(`handing a stream over .*?\bstream:(\S+)`)

// TestAJoinKeptPartitionsDeliverWhileMovedOnesDrain: a member owning four
// partitions holds one message of each in its handler when a second
// member joins. The join is held open: the two partitions the assignment
// moves cannot be handed over until their messages are acked. Meanwhile
// the two the first member keeps deliver new messages to it (and the
// newcomer has none yet). TestAJoinMovesOnlyWhatTheAssignmentMoves shows
// the kept ones are not revoked; this shows they keep delivering while
// the join is under way, as cooperative rebalancing (KIP-429) promises.
// Once the held messages are acked, the moved partitions deliver to the
// newcomer. Nothing is handled twice.
func TestAJoinKeptPartitionsDeliverWhileMovedOnesDrain(t *testing.T) {
	base := dstest.StreamURL(t)
	const topic, n = "jobs", 4
	pub := partitionedPublisher(t, base, n)
	seq := 0
	publishTo := func(part int) *message.Message {
		t.Helper()
		seq++
		msg := keyed(keyOf(part, n), seq)
		require.NoError(t, pub.Publish(topic, msg))
		return msg
	}
	partOf := func(msg *message.Message) int {
		return partition.Of(msg.Metadata.Get(partitionKey), n)
	}
	recv := func(msgs <-chan *message.Message, what string) *message.Message {
		t.Helper()
		select {
		case msg := <-msgs:
			return msg
		case <-time.After(20 * time.Second):
			t.Fatalf("no message: %s", what)
			return nil
		}
	}

	// One message per partition (the first publish records the count).
	for p := range n {
		publishTo(p)
	}
	logs := newCapturingLogger()
	a, aMsgs := loggedMember(t, base, topic, "a", 2*time.Second, logs)
	t.Cleanup(func() { require.NoError(t, a.Close()) })
	// a alone: it holds one message of each partition.
	held := map[int]*message.Message{}
	for range n {
		msg := recv(aMsgs, "a owns every partition")
		held[partOf(msg)] = msg
	}
	require.Len(t, held, n, "one message per partition in a's hands")

	b := groupSubscriber(t, base, "g", "b", 0)
	bMsgs, err := b.Subscribe(t.Context(), topic)
	require.NoError(t, err)
	var moved []int
	require.Eventually(t, func() bool {
		moved = moved[:0]
		for _, m := range handingOver.FindAllStringSubmatch(logs.text(), -1) {
			for p := range n {
				if m[1] == partition.StreamName(topic, p, n) {
					moved = append(moved, p)
				}
			}
		}
		return len(moved) == n/2
	}, 20*time.Second, 5*time.Millisecond, "the join never moved two partitions:\n%s", logs.text())
	slices.Sort(moved)
	t.Logf("partitions moved to b: %v", moved)

	// The join is under way: the moved partitions wait for a's acks.
	// The kept ones deliver to a.
	for p := range n {
		if slices.Contains(moved, p) {
			continue
		}
		held[p].Ack()
		sent := publishTo(p)
		got := recv(aMsgs, "a kept partition does not deliver during the join")
		require.Equal(t, sent.UUID, got.UUID, "partition %d", p)
		got.Ack()
	}
	select {
	case msg := <-bMsgs:
		t.Fatalf("b got message %s before a moved partition was handed over", msg.UUID)
	default:
	}
	for _, p := range moved {
		require.NoError(t, held[p].Context().Err(), "the handover cancelled the message in hand")
		held[p].Ack()
	}
	// Handed over now: b gets what comes to the moved partitions, and
	// nothing a handled.
	for _, p := range moved {
		sent := publishTo(p)
		got := recv(bMsgs, "a moved partition does not deliver to b")
		require.Equal(t, sent.UUID, got.UUID, "partition %d", p)
		got.Ack()
	}
	require.NotContains(t, logs.text(), "ERROR", "an Error during the join")
	require.Equal(t, n, strings.Count(logs.text(), "Claimed consumer group stream"), "a claimed again what it kept:\n%s", logs.text())
}
