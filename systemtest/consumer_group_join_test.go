package systemtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// TestAJoinMovesOnlyWhatTheAssignmentMoves: a member draining four
// partitions alone is joined by a second member. Cooperative rebalancing
// (as Kafka's KIP-429): only the two partitions the assignment gives the
// newcomer are handed over; the two the first member keeps are never
// revoked, so they deliver through the join. Everything is handled once.
func TestAJoinMovesOnlyWhatTheAssignmentMoves(t *testing.T) {
	base := dstest.StreamURL(t)
	const topic, n = "jobs", 4
	pub := partitionedPublisher(t, base, n)
	publishRound := func(round int) {
		for i := range 40 {
			require.NoError(t, pub.Publish(topic, keyed(keyOf(i%n, n), round*40+i)))
		}
	}
	publishRound(0)

	logs := newCapturingLogger()
	h := newHandled()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	a, aMsgs := loggedMember(t, base, topic, "a", 2*time.Second, logs)
	aDone := h.consume(t, "a", aMsgs)
	h.waitDistinct(t, 40, 20*time.Second)
	require.Equal(t, n, strings.Count(logs.text(), "Claimed consumer group stream"), "a alone claims every partition:\n%s", logs.text())

	bMsgs, err := groupSubscriber(t, base, "g", "b", 0).Subscribe(ctx, topic)
	require.NoError(t, err)
	bDone := h.consume(t, "b", bMsgs)
	publishRound(1)
	publishRound(2)
	h.waitDistinct(t, 120, 20*time.Second)
	require.Eventually(t, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.by["b"] > 0
	}, 20*time.Second, 10*time.Millisecond, "b never got a partition")

	text := logs.text()
	require.Equal(t, n/2, strings.Count(text, "handing a stream over"), "only the partitions that move are handed over:\n%s", text)
	require.Equal(t, n, strings.Count(text, "Claimed consumer group stream"), "a claims nothing again:\n%s", text)
	cancel()
	require.NoError(t, a.Close())
	aDone.Wait()
	bDone.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, times := range h.times {
		require.Equal(t, 1, times, "message %s handled %d times", id, times)
	}
}
