package systemtest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// TestASecondLiveSubscriptionUnderOneNameIsRefused: a MemberID names one
// member and a Checkpoint one reader. A second live Subscribe of the same
// Subscriber to the same topic under that name (a Router with two handlers
// on one topic, say) is ErrInvalidConfig at once, instead of superseding
// the first member (which then ends with an Error) or two readers storing
// each other's positions. Once the first ends, the name is free again.
func TestASecondLiveSubscriptionUnderOneNameIsRefused(t *testing.T) {
	base := dstest.StreamURL(t)
	cases := map[string]ds.SubscriberConfig{
		"MemberID":   {BaseURL: base, ConsumerGroup: "g", MemberID: "m1"},
		"Checkpoint": {BaseURL: base, Checkpoint: "c1", OffsetStore: ds.NewMemoryOffsetStore()},
	}
	for name, config := range cases {
		t.Run(name, func(t *testing.T) {
			sub, err := ds.NewSubscriber(config, nil)
			require.NoError(t, err)
			t.Cleanup(func() { _ = sub.Close() })
			ctx, cancel := context.WithCancel(context.Background())
			first, err := sub.Subscribe(ctx, "orders-"+name)
			require.NoError(t, err)

			_, err = sub.Subscribe(context.Background(), "orders-"+name)
			require.ErrorIs(t, err, ds.ErrInvalidConfig)
			require.ErrorContains(t, err, name)
			other, err := sub.Subscribe(context.Background(), "other-"+name)
			require.NoError(t, err, "another topic is another member or reader")
			require.NotNil(t, other)

			cancel()
			for range first {
			}
			again, err := sub.Subscribe(context.Background(), "orders-"+name)
			require.NoError(t, err, "the name is free once the first subscription ended")
			require.NoError(t, sub.Close())
			select {
			case _, open := <-again:
				require.False(t, open)
			case <-time.After(30 * time.Second):
				t.Fatal("Close did not end the subscription")
			}
		})
	}
}

// TestSubscriptionsWithoutANameAreMembersOfTheirOwn: without a MemberID every
// Subscribe is a member of its own, so two handlers of one Subscriber on
// one topic share the group's work, as two consumers in one Kafka group.
func TestSubscriptionsWithoutANameAreMembersOfTheirOwn(t *testing.T) {
	base := dstest.StreamURL(t)
	sub, err := ds.NewSubscriber(ds.SubscriberConfig{BaseURL: base, ConsumerGroup: "g"}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Close() })
	_, err = sub.Subscribe(context.Background(), "orders")
	require.NoError(t, err)
	_, err = sub.Subscribe(context.Background(), "orders")
	require.NoError(t, err)
}
