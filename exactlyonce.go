package durablestreams

import (
	"context"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/exactlyonce"
	"github.com/durablestreams/watermill-durablestreams/internal/group"
	"github.com/durablestreams/watermill-durablestreams/internal/partition"
)

// Errors of exactly-once consume → publish (see ExactlyOnce). Test for them
// with errors.Is. None of them was written.
var (
	// ErrNotExactlyOnce means an output cannot be written exactly once:
	// its input was not delivered by a consumer group of this package
	// (SubscriberConfig.ConsumerGroup), or one Publish call mixed outputs
	// of different inputs, or outputs with none, or two Publish calls of
	// one input's outputs ran at once (their order numbers them). Nothing
	// was written: the library never falls back to at-least-once on its
	// own.
	ErrNotExactlyOnce = exactlyonce.ErrNotExactlyOnce
	// ErrNotCoPartitioned means an output would leave its input's
	// partition: the output topic has another partition count than the
	// input topic, or the output's partition key maps to another
	// partition. Exactly-once needs partition i of the output written only
	// by the owner of partition i of the input (as Kafka Streams requires).
	ErrNotCoPartitioned = errors.New("durablestreams: output topic is not co-partitioned with the input topic")
	// ErrSecondWriter means another exactly-once writer (another consumer
	// group, or another input topic) claimed the output stream first. Two
	// writers would make each other's outputs look "already written", so
	// the second one is refused.
	ErrSecondWriter = exactlyonce.ErrSecondWriter
)

// ExactlyOnce is a Router middleware that makes a handler's outputs
// exactly-once: every message the handler returns, and every message
// published during the handler with its input's context (a CQRS EventBus
// inside a command handler does that), is written once per input, in
// input order per partition, through crashes, pauses and rebalances.
//
//	router.AddMiddleware(durablestreams.ExactlyOnce)
//
// Add it after Retry and PoisonQueue (innermost), so that each retry of
// the handler is numbered from the first output again: the outputs of a
// run that failed are then found written, not written twice.
//
// The input must come from a Subscriber with ConsumerGroup set, and the
// outputs must go through a durablestreams Publisher to a topic
// co-partitioned with the input. An input from anywhere else fails with
// ErrNotExactlyOnce (it is nacked; it never runs at-least-once silently).
// See docs/exactly-once.md.
func ExactlyOnce(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		t := exactlyonce.TxnOf(msg.Context())
		if t == nil {
			return nil, fmt.Errorf("%w: message %s was not delivered by a consumer group of this package", ErrNotExactlyOnce, msg.UUID)
		}
		t.Armed.Store(true)
		// Each run of the handler is an attempt of its own, numbered from
		// 0: a Retry middleware outside this one runs it again, and what
		// an earlier run wrote is then answered "already written" instead
		// of being written again under later numbers.
		t.Next.Store(0)
		outs, err := h(msg)
		for _, out := range outs {
			if out != nil {
				out.SetContext(msg.Context())
			}
		}
		return outs, err
	}
}

// eoSource is what a group subscription knows about the stream it reads,
// for the outputs of its messages.
type eoSource exactlyonce.Source

// withTxn gives a delivery's context its input's transaction.
func (s *eoSource) withTxn(ctx context.Context, ordinal int64, input string) context.Context {
	if s == nil {
		return ctx
	}
	return exactlyonce.WithTxn(ctx, (*exactlyonce.Source)(s), ordinal, input)
}

// eoSource describes the stream a lease reads, for its outputs.
func (s *Subscriber) eoSource(topic string, parts int, l *group.Lease) *eoSource {
	src := &eoSource{Group: s.config.ConsumerGroup, Topic: topic, Stream: l.Stream(), Parts: max(parts, 1), Lease: l}
	for i := range src.Parts {
		if partition.StreamName(topic, i, parts) == l.Stream() {
			src.Part = i
		}
	}
	return src
}

// Delivery is where a message a consumer group delivered comes from. It
// serves side effects of your own that must happen once per input (stream
// and ordinal are a key) and audits of which owner wrote what.
type Delivery struct {
	// Stream is the stream the message was read from (a partition's
	// stream of a partitioned topic).
	Stream string
	// Ordinal counts the messages of the stream the group consumed before
	// this one: the same for every owner and every redelivery.
	Ordinal int64
	// Epoch is the generation of the lease the message was delivered
	// under: every new owner of the stream has a higher one.
	Epoch int64
}

// DeliveryOf tells where the message whose context ctx is (or derives
// from) was delivered; false for a context that no consumer group
// delivery carries.
func DeliveryOf(ctx context.Context) (Delivery, bool) {
	t := exactlyonce.TxnOf(ctx)
	if t == nil {
		return Delivery{}, false
	}
	return Delivery{Stream: t.Src.Stream, Ordinal: t.Ordinal, Epoch: t.Src.Lease.Epoch()}, true
}
