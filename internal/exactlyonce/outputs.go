package exactlyonce

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/partition"
	"github.com/durablestreams/watermill-durablestreams/internal/producer"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// Outputs publishes the outputs of consumer-group inputs exactly once for
// one Publisher: what it needs of the Publisher, and the root package's
// hooks that word its errors.
type Outputs struct {
	Env Env
	// Trace: log a Trace entry per message.
	Trace bool
	// URL maps a stream's name to its URL.
	URL func(stream string) (string, error)
	// Marshal marshals a message for the stream named stream.
	Marshal func(stream string, msg *message.Message) ([]byte, error)
	// ValidJSON: Marshal's output is valid JSON by construction.
	ValidJSON bool
	// Partitions is the partition count of an output topic.
	Partitions   func(ctx context.Context, topic string) (int, error)
	PartitionKey func(topic string, msg *message.Message) string

	// Errorf wraps an error where it leaves the root package, as that
	// package words errors.
	Errorf func(err error, format string, args ...any) error
	// NotCoPartitioned is the error of an output that would leave its
	// input's partition.
	NotCoPartitioned error
}

// Publish writes msgs, outputs of input t, in one request to the
// partition of topic that matches the input's partition. It is
// synchronous whatever Async says: the input is acked only after it
// returns nil. An error matching protocol.ErrOutcomeUnknown may hide a
// write; any other error means nothing was written. Either way the input
// is nacked and its redelivery writes what is missing, never a second
// copy.
func (o *Outputs) Publish(topic string, t *Txn, msgs []*message.Message) error {
	// The outputs of one input are numbered in the order they are
	// published; two calls at once (a handler fanning out on goroutines)
	// have no order, and a redelivery could number them the other way
	// round: a later number landing first would have the earlier one
	// answered "already written". So they are refused, not raced.
	if t.Publishing.Add(1) > 1 {
		t.Publishing.Add(-1)
		return o.Errorf(fmt.Errorf("%w: another Publish of the same input's outputs is under way; publish them one call at a time", ErrNotExactlyOnce),
			"publish to %q exactly once (nothing written)", topic)
	}
	defer t.Publishing.Add(-1)
	ctx := msgs[0].Context()
	stream, err := o.stream(ctx, topic, t, msgs)
	if err != nil {
		return o.Errorf(err, "publish to %q exactly once (nothing written)", topic)
	}
	url, err := o.URL(stream)
	if err != nil {
		return err
	}
	body, err := o.body(stream, msgs)
	if err != nil {
		return o.Errorf(err, "publish to %q exactly once (nothing written)", topic)
	}
	first := t.Next.Add(int64(len(msgs))) - int64(len(msgs))
	w := WriterFor(t.Src.Group, t.Src.Stream, stream, url)
	in := Input{Stream: t.Src.Stream, Ordinal: t.Ordinal, Lease: t.Src.Lease}
	if err := w.Write(ctx, o.Env, in, first, body); err != nil {
		return o.Errorf(err, "publish to %q exactly once", stream)
	}
	if o.Trace {
		for _, msg := range msgs {
			o.Env.Logger.Trace("Message published exactly once", watermill.LogFields{
				"topic": stream, "message_uuid": msg.UUID, "stream_url": protocol.RedactURL(url),
				"input_stream": t.Src.Stream, "input_ordinal": t.Ordinal,
			})
		}
	}
	return nil
}

// stream is the output stream of input t in topic: partition i of
// topic for partition i of the input, when both have the same count;
// an output whose key maps elsewhere is refused, not moved.
func (o *Outputs) stream(ctx context.Context, topic string, t *Txn, msgs []*message.Message) (string, error) {
	n, err := o.Partitions(ctx, topic)
	if err != nil {
		return "", err
	}
	if n != t.Src.Parts {
		return "", fmt.Errorf("%w: %q has %d partition(s), the input %q has %d",
			o.NotCoPartitioned, topic, n, t.Src.Topic, t.Src.Parts)
	}
	if n > 1 {
		for _, msg := range msgs {
			key := o.PartitionKey(topic, msg)
			if key == "" {
				continue // an output without a key follows its input
			}
			if k := partition.Of(key, n); k != t.Src.Part {
				return "", fmt.Errorf("%w: output %s has partition key %q (partition %d), its input is in partition %d of %q",
					o.NotCoPartitioned, msg.UUID, key, k, t.Src.Part, t.Src.Topic)
			}
		}
	}
	return partition.StreamName(topic, t.Src.Part, n), nil
}

// body is the request body of msgs: a JSON array in JSON mode (one
// message each), the payloads one after another otherwise.
func (o *Outputs) body(stream string, msgs []*message.Message) ([]byte, error) {
	jsonMode := protocol.IsJSON(o.Env.ContentType)
	var body []byte
	if jsonMode {
		body = append(body, '[')
	}
	for i, msg := range msgs {
		if msg.Metadata == nil {
			msg.Metadata = make(message.Metadata)
		}
		payload, err := o.Marshal(stream, msg)
		if err != nil {
			return nil, o.Errorf(err, "marshal message %s", msg.UUID)
		}
		if err := producer.CheckPayload(payload, jsonMode && !o.ValidJSON); err != nil {
			return nil, fmt.Errorf("%w: message %s", err, msg.UUID)
		}
		if jsonMode && i > 0 {
			body = append(body, ',')
		}
		body = append(body, payload...)
	}
	if jsonMode {
		body = append(body, ']')
	}
	return body, nil
}
