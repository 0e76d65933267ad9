package durablestreams

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/exactlyonce"
	"github.com/durablestreams/watermill-durablestreams/internal/partition"
	"github.com/durablestreams/watermill-durablestreams/internal/producer"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// publishExactlyOnce writes msgs, outputs of input t, in one request to
// the partition of topic that matches the input's partition. It is
// synchronous whatever Async says: the input is acked only after it
// returns nil. An error matching ErrOutcomeUnknown may hide a write; any
// other error means nothing was written. Either way the input is nacked
// and its redelivery writes what is missing, never a second copy.
func (p *Publisher) publishExactlyOnce(topic string, t *eoTxn, msgs []*message.Message) error {
	// The outputs of one input are numbered in the order they are
	// published; two calls at once (a handler fanning out on goroutines)
	// have no order, and a redelivery could number them the other way
	// round: a later number landing first would have the earlier one
	// answered "already written". So they are refused, not raced.
	if t.publishing.Add(1) > 1 {
		t.publishing.Add(-1)
		return errorf(fmt.Errorf("%w: another Publish of the same input's outputs is under way; publish them one call at a time", ErrNotExactlyOnce),
			"publish to %q exactly once (nothing written)", topic)
	}
	defer t.publishing.Add(-1)
	ctx := msgs[0].Context()
	stream, err := p.eoStream(ctx, topic, t, msgs)
	if err != nil {
		return errorf(err, "publish to %q exactly once (nothing written)", topic)
	}
	url, err := p.streamURL(stream)
	if err != nil {
		return err
	}
	body, err := p.eoBody(stream, msgs)
	if err != nil {
		return errorf(err, "publish to %q exactly once (nothing written)", topic)
	}
	first := t.next.Add(int64(len(msgs))) - int64(len(msgs))
	w := exactlyonce.WriterFor(t.src.group, t.src.stream, stream, url)
	env := exactlyonce.Env{Client: p.client, Logger: p.logger, ContentType: p.config.Marshaler.ContentType()}
	in := exactlyonce.Input{Stream: t.src.stream, Ordinal: t.ordinal, Lease: t.src.lease}
	if err := w.Write(ctx, env, in, first, body); err != nil {
		return errorf(err, "publish to %q exactly once", stream)
	}
	if p.trace {
		for _, msg := range msgs {
			p.logger.Trace("Message published exactly once", watermill.LogFields{
				"topic": stream, "message_uuid": msg.UUID, "stream_url": protocol.RedactURL(url),
				"input_stream": t.src.stream, "input_ordinal": t.ordinal,
			})
		}
	}
	return nil
}

// eoStream is the output stream of input t in topic: partition i of
// topic for partition i of the input, when both have the same count;
// an output whose key maps elsewhere is refused, not moved.
func (p *Publisher) eoStream(ctx context.Context, topic string, t *eoTxn, msgs []*message.Message) (string, error) {
	n, err := p.eoPartitions(ctx, topic)
	if err != nil {
		return "", err
	}
	if n != t.src.parts {
		return "", fmt.Errorf("%w: %q has %d partition(s), the input %q has %d",
			ErrNotCoPartitioned, topic, n, t.src.topic, t.src.parts)
	}
	if n > 1 {
		for _, msg := range msgs {
			key := p.config.partitionKey(topic, msg)
			if key == "" {
				continue // an output without a key follows its input
			}
			if k := partition.Of(key, n); k != t.src.part {
				return "", fmt.Errorf("%w: output %s has partition key %q (partition %d), its input is in partition %d of %q",
					ErrNotCoPartitioned, msg.UUID, key, k, t.src.part, t.src.topic)
			}
		}
	}
	return partition.StreamName(topic, t.src.part, n), nil
}

// eoPartitions is the partition count of an output topic: the
// configured one (recorded on the server as usual), or, without
// Partitions, the one recorded on the server (1 when none).
func (p *Publisher) eoPartitions(ctx context.Context, topic string) (int, error) {
	if p.config.Partitions > 0 {
		if err := p.topics.EnsurePartitions(ctx, topic); err != nil {
			return 0, err
		}
		return p.config.Partitions, nil
	}
	return p.parts.Recorded(ctx, topic)
}

// eoBody is the request body of msgs: a JSON array in JSON mode (one
// message each), the payloads one after another otherwise.
func (p *Publisher) eoBody(stream string, msgs []*message.Message) ([]byte, error) {
	jsonMode := protocol.IsJSON(p.config.Marshaler.ContentType())
	var body []byte
	if jsonMode {
		body = append(body, '[')
	}
	for i, msg := range msgs {
		if msg.Metadata == nil {
			msg.Metadata = make(message.Metadata)
		}
		payload, err := p.config.Marshaler.Marshal(stream, msg)
		if err != nil {
			return nil, errorf(err, "marshal message %s", msg.UUID)
		}
		if err := producer.CheckPayload(payload, jsonMode && !p.validJSON); err != nil {
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
