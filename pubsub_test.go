package durablestreams_test

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
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

type pubSubFactory struct {
	base  string
	store ds.OffsetStore
}

func newPubSubFactory(t *testing.T) *pubSubFactory {
	base := dstest.StreamURL(t)
	store, err := ds.NewStreamOffsetStore(ds.StreamOffsetStoreConfig{BaseURL: base})
	require.NoError(t, err)
	return &pubSubFactory{base: base, store: store}
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
	if group != "" {
		cfg.ConsumerGroup = group
		cfg.OffsetStore = f.store
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
