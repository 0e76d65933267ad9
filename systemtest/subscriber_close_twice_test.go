package systemtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// TestASecondCloseWaitsAsTheFirstDoes: a Close made while another is
// still waiting for a message in hand (HandoverTimeout) returns only once
// the subscription has ended too; it used to return at once, with the
// channel still open.
func TestASecondCloseWaitsAsTheFirstDoes(t *testing.T) {
	base := dstest.StreamURL(t)
	pub, _ := newTestPublisher(t, ds.PublisherConfig{BaseURL: base})
	publishN(t, pub, "t", 0, 1)
	sub := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: base, Checkpoint: "c",
		OffsetStore: ds.NewMemoryOffsetStore(), HandoverTimeout: time.Second})
	ch, err := sub.Subscribe(context.Background(), "t")
	require.NoError(t, err)
	<-ch // in hand, never acked: the first Close waits HandoverTimeout for it

	first := make(chan error, 1)
	go func() { first <- sub.Close() }()
	require.Eventually(t, func() bool {
		_, err := sub.Subscribe(context.Background(), "other")
		return errors.Is(err, ds.ErrSubscriberClosed)
	}, 10*time.Second, time.Millisecond, "the first Close has begun")

	require.NoError(t, sub.Close())
	select {
	case _, open := <-ch:
		require.False(t, open, "no message after Close")
	default:
		t.Fatal("the second Close returned with the subscription still running")
	}
	require.NoError(t, <-first)
}
