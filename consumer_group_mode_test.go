package durablestreams_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// TestConsumerGroupWithOffsetStoreWarnsOncePerSubscribe: a group with an
// OffsetStore keeps only a position (fan-out), and each Subscribe says so;
// a sharing group (no OffsetStore) does not.
func TestConsumerGroupWithOffsetStoreWarnsOncePerSubscribe(t *testing.T) {
	base := dstest.StreamURL(t)
	warnings := func(logger *watermill.CaptureLoggerAdapter) int {
		n := 0
		for _, m := range logger.Captured()[watermill.InfoLogLevel] {
			if strings.Contains(m.Msg, "keeps only a position") {
				n++
			}
		}
		return n
	}
	logger := watermill.NewCaptureLogger()
	sub, err := ds.NewSubscriber(ds.SubscriberConfig{BaseURL: base, ConsumerGroup: "g", OffsetStore: ds.NewMemoryOffsetStore()}, logger)
	require.NoError(t, err)
	for range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		_, err := sub.Subscribe(ctx, "t")
		require.NoError(t, err)
		cancel()
	}
	// Captured reads the logger's map unlocked: count once nothing logs.
	require.NoError(t, sub.Close())
	require.Equal(t, 2, warnings(logger))

	shared := watermill.NewCaptureLogger()
	member := groupSubscriberWithLogger(t, base, "g2", shared)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base}, nil)
	require.NoError(t, err)
	defer pub.Close()
	require.NoError(t, pub.Publish("t", keyed("k", 1)))
	msgs, err := member.Subscribe(ctx, "t")
	require.NoError(t, err)
	select {
	case msg := <-msgs: // read by a lease reader, which has started
		msg.Ack()
	case <-time.After(30 * time.Second):
		t.Fatal("the only member never delivered")
	}
	require.NoError(t, member.Close())
	require.Zero(t, warnings(shared), "a sharing group's lease readers must not warn")
}

func groupSubscriberWithLogger(t *testing.T, base, groupName string, logger watermill.LoggerAdapter) *ds.Subscriber {
	t.Helper()
	sub, err := ds.NewSubscriber(ds.SubscriberConfig{BaseURL: base, ConsumerGroup: groupName}, logger)
	require.NoError(t, err)
	return sub
}
