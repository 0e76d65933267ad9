package systemtest

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
)

type userCreated struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// TestCQRSEventBusKeepsEventName: CQRS routes events by the "name"
// metadata, which must survive the stream.
func TestCQRSEventBusKeepsEventName(t *testing.T) {
	pub, base := newTestPublisher(t, ds.PublisherConfig{})
	marshaler := cqrs.JSONMarshaler{}
	bus, err := cqrs.NewEventBusWithConfig(pub, cqrs.EventBusConfig{
		GeneratePublishTopic: func(p cqrs.GenerateEventPublishTopicParams) (string, error) {
			return "events." + p.EventName, nil
		},
		Marshaler: marshaler,
	})
	require.NoError(t, err)

	require.NoError(t, bus.Publish(context.Background(), &userCreated{ID: "u-1", Name: "Ada"}))

	got := decodeAll(t, readJSONStream(t, base+"/events."+marshaler.Name(&userCreated{})))
	require.Len(t, got, 1)
	assert.Equal(t, marshaler.Name(&userCreated{}), marshaler.NameFromMessage(got[0]))
	var event userCreated
	require.NoError(t, marshaler.Unmarshal(got[0], &event))
	assert.Equal(t, userCreated{ID: "u-1", Name: "Ada"}, event)
}

// TestRouterHandlerPublishesThroughPublisher: a Router handler's output
// goes to a stream, and the input is acked only after the output is durable.
func TestRouterHandlerPublishesThroughPublisher(t *testing.T) {
	pub, base := newTestPublisher(t, ds.PublisherConfig{})
	// Publish to the input blocks until the Router acks the message.
	input := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, nil)
	defer input.Close()

	router, err := message.NewRouter(message.RouterConfig{}, nil)
	require.NoError(t, err)
	router.AddHandler("enrich", "in", input, "out", pub, func(msg *message.Message) ([]*message.Message, error) {
		out := message.NewMessage(watermill.NewUUID(), append([]byte(`{"enriched":`), append(msg.Payload, '}')...))
		out.Metadata.Set("source_uuid", msg.UUID)
		return []*message.Message{out}, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = router.Run(ctx) }()
	<-router.Running()

	const n = 20
	for i := range n {
		msg := message.NewMessage(watermill.NewUUID(), []byte{byte('0' + i%10)})
		require.NoError(t, input.Publish("in", msg))
		// The Router acked the input only after the handler's output was
		// published, i.e. acknowledged by the server: it is there now.
		require.Len(t, readJSONStream(t, base+"/out"), i+1)
	}
	require.NoError(t, router.Close())
}
