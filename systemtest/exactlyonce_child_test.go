package systemtest

import (
	"context"
	"fmt"
	"github.com/durablestreams/watermill-durablestreams/internal/defaults"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
)

// eoChildEnv makes TestEOChildMember a member process of the exactly-once
// crash tests: its value is the base URL; eoChildEnv+"_ID" is the member
// id, eoChildEnv+"_MODE" "router" or "cqrs".
const eoChildEnv = "DS_EO_CHILD_BASE"

const (
	eoGroup      = "eo"
	eoPartitions = 8
	eoSession    = 2 * time.Second
)

// TestEOChildMember is not a test on its own: the exactly-once crash tests
// run the test binary again with it, as a member they SIGKILL, SIGSTOP and
// SIGTERM. It consumes "in" in the group and writes one output per input
// to "out" (router mode: a Router handler that returns it; cqrs mode: a
// command handler that publishes an event through an EventBus), with the
// ExactlyOnce middleware. It prints "ready" once running and exits on
// SIGTERM after closing the Router.
func TestEOChildMember(t *testing.T) {
	base := os.Getenv(eoChildEnv)
	if base == "" {
		t.Skip("a member process for the exactly-once crash tests")
	}
	member := os.Getenv(eoChildEnv + "_ID")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	logger := watermill.NewStdLoggerWithOut(os.Stderr, os.Getenv("DS_EO_DEBUG") != "", false)
	sub, err := ds.NewSubscriber(ds.SubscriberConfig{
		BaseURL: base, ConsumerGroup: eoGroup, MemberID: member, Partitions: eoPartitions,
		SessionTimeout: eoSession, HeartbeatInterval: 200 * time.Millisecond,
		NackResendDelay: 10 * time.Millisecond,
	}, logger)
	require.NoError(t, err)
	pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base, Partitions: eoPartitions}, logger)
	require.NoError(t, err)
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 5 * time.Second}, logger)
	require.NoError(t, err)
	if os.Getenv(eoChildEnv+"_AT_LEAST_ONCE") == "" { // the control run: without it the test must fail
		router.AddMiddleware(ds.ExactlyOnce)
	}
	if os.Getenv(eoChildEnv+"_MODE") == "cqrs" {
		addEOCommandHandler(t, router, sub, pub, member)
	} else {
		router.AddHandler("eo", "in", sub, "out", pub, func(msg *message.Message) ([]*message.Message, error) {
			return []*message.Message{eoOutput(msg, member)}, nil
		})
	}
	go func() {
		<-router.Running()
		fmt.Println("ready")
	}()
	require.NoError(t, router.Run(ctx))
	require.NoError(t, pub.Close())
}

// eoOutput is the one output of an input: what the checks need to know.
func eoOutput(in *message.Message, member string) *message.Message {
	out := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
	out.Metadata.Set("in", in.UUID)
	out.Metadata.Set(defaults.PartitionKey, in.Metadata.Get(defaults.PartitionKey))
	out.Metadata.Set("seq", in.Metadata.Get("seq"))
	out.Metadata.Set("member", member)
	out.Metadata.Set("epoch", strconv.FormatInt(deliveryEpoch(in.Context()), 10))
	return out
}

// eoCommand is the command of the CQRS crash test; eoEvent its event.
type eoCommand struct {
	Key string `json:"key"`
	Seq int    `json:"seq"`
}

func (c *eoCommand) PartitionKey() string { return c.Key }

type eoEvent struct {
	Command string `json:"command"`
	Key     string `json:"key"`
	Seq     int    `json:"seq"`
	Member  string `json:"member"`
	Epoch   int64  `json:"epoch"`
}

func (e *eoEvent) PartitionKey() string { return e.Key }

func addEOCommandHandler(t *testing.T, router *message.Router, sub *ds.Subscriber, pub *ds.Publisher, member string) {
	marshaler := cqrs.JSONMarshaler{}
	bus, err := cqrs.NewEventBusWithConfig(pub, cqrs.EventBusConfig{
		GeneratePublishTopic: func(cqrs.GenerateEventPublishTopicParams) (string, error) { return "out", nil },
		OnPublish:            ds.KeyEvents,
		Marshaler:            marshaler,
	})
	require.NoError(t, err)
	proc, err := cqrs.NewCommandProcessorWithConfig(router, cqrs.CommandProcessorConfig{
		GenerateSubscribeTopic: func(cqrs.CommandProcessorGenerateSubscribeTopicParams) (string, error) { return "in", nil },
		SubscriberConstructor:  func(cqrs.CommandProcessorSubscriberConstructorParams) (message.Subscriber, error) { return sub, nil },
		Marshaler:              marshaler,
	})
	require.NoError(t, err)
	require.NoError(t, proc.AddHandlers(cqrs.NewCommandHandler("eo", func(ctx context.Context, c *eoCommand) error {
		return bus.Publish(ctx, &eoEvent{Command: cqrs.OriginalMessageFromCtx(ctx).UUID, Key: c.Key, Seq: c.Seq, Member: member, Epoch: deliveryEpoch(ctx)})
	})))
}

// deliveryEpoch is the lease epoch an input was delivered under (-1: none).
func deliveryEpoch(ctx context.Context) int64 {
	if d, ok := ds.DeliveryOf(ctx); ok {
		return d.Epoch
	}
	return -1
}
