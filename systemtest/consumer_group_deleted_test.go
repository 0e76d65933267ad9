package systemtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// TestGroupPartitionDeletedUnderItsOwnerIsLostAtErrorAndReadAgain: a
// partition stream deleted (by hand, with a raw DELETE) under the live
// member that owns it is a lost position: the owner logs it at Error
// naming the stream, and OnPositionLost (the default: from the start)
// is followed. Its other partition keeps delivering meanwhile; every
// message published to the recreated stream is delivered; and the
// position stored for the new stream is right, so a fresh member after
// the owner's Close gets exactly what was published after it, nothing
// skipped and nothing twice. Before: the owner never read the partition
// again, and a fresh member skipped 270 of 535 messages with no Error.
func TestGroupPartitionDeletedUnderItsOwnerIsLostAtErrorAndReadAgain(t *testing.T) {
	base := dstest.StreamURL(t)
	const topic, parts = "jobs", 2
	pub := partitionedPublisher(t, base, parts)
	seq := 0
	publishTo := func(part, n int) {
		t.Helper()
		for range n {
			seq++
			require.NoError(t, pub.Publish(topic, keyed(keyOf(part, parts), seq)))
		}
	}
	publishTo(0, 20)
	publishTo(1, 20)

	logs := newCapturingLogger()
	cfg := ds.SubscriberConfig{
		BaseURL: base, ConsumerGroup: "g", MemberID: "owner", Partitions: parts,
		SessionTimeout: 2 * time.Second, HeartbeatInterval: 200 * time.Millisecond,
	}
	cfg.RetryPolicy = fastSubRetry
	owner, err := ds.NewSubscriber(cfg, logs)
	require.NoError(t, err)
	h := newHandled()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	msgs, err := owner.Subscribe(ctx, topic)
	require.NoError(t, err)
	ownerDone := h.consume(t, "owner", msgs)
	h.waitDistinct(t, 40, 20*time.Second)

	deleted := partitionStream(base, topic, 1, parts)
	httpDo(t, "DELETE", deleted, "", "")
	require.Eventually(t, func() bool {
		for _, line := range strings.Split(logs.text(), "\n") {
			if strings.HasPrefix(line, "ERROR The stream cannot honour the stored position") &&
				strings.Contains(line, "stream:jobs.p1") && strings.Contains(line, "the stream was deleted") {
				return true
			}
		}
		return false
	}, 20*time.Second, 5*time.Millisecond, "the deletion was not logged at Error naming the stream:\n%s", logs.text())

	// The other partition is not stalled.
	publishTo(0, 10)
	h.waitDistinct(t, 50, 20*time.Second)
	// The stream comes back, empty; all of what is published to it is
	// delivered.
	httpDo(t, "PUT", deleted, "application/json", "")
	publishTo(1, 10)
	h.waitDistinct(t, 60, 20*time.Second)

	// The owner stores where it stands in the new stream: a fresh member
	// goes on from there.
	cancel()
	ownerDone.Wait()
	require.NoError(t, owner.Close())
	publishTo(0, 10)
	publishTo(1, 10)
	fresh := groupSubscriber(t, base, "g", "fresh", parts)
	freshMsgs, err := fresh.Subscribe(t.Context(), topic)
	require.NoError(t, err)
	freshDone := h.consume(t, "fresh", freshMsgs)
	h.waitDistinct(t, 80, 20*time.Second)
	require.NoError(t, fresh.Close())
	freshDone.Wait()

	h.mu.Lock()
	defer h.mu.Unlock()
	for id, n := range h.times {
		require.Equal(t, 1, n, "message %s handled %d times", id, n)
	}
	require.Equal(t, map[string]int{"owner": 60, "fresh": 20}, h.by)
	require.Zero(t, h.order, "per-key order violations")
}
