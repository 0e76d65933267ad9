package topics

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/partition"
)

// publishPartitioned writes each message to its key's partition of topic.
// Every message is marshaled and validated, and every partition's producer
// acquired, before any is buffered: a failure there fails the call and
// nothing of it is written. Then each partition gets its messages in call
// order. Synchronously, the errors cover the whole call, in its order,
// each message's error naming its partition stream. With Async, each
// partition's messages are buffered all or nothing; the call's error is
// the first partition's refusal, a later one's goes to OnAsyncError (see
// publishAsyncParts).
func (r *Registry) publishPartitioned(topic string, msgs []*message.Message) ([]string, []error, error) {
	for i, msg := range msgs {
		if msg == nil {
			return nil, nil, fmt.Errorf("%w: publish to %q: message %d of %d", r.cfg.NilMessage, topic, i, len(msgs))
		}
	}
	if err := r.EnsurePartitions(msgs[0].Context(), topic); err != nil {
		return nil, nil, err
	}
	n := r.cfg.Partitions
	order, idx := partition.Split(len(msgs), func(i int) string { return r.cfg.PartitionKey(topic, msgs[i]) }, n)
	parts := make([]prepared, 0, len(order))
	defer func() {
		for _, part := range parts {
			r.release(part.tp)
		}
	}()
	for _, k := range order {
		part, err := r.prepare(partition.StreamName(topic, k, n), msgs, idx[k])
		if err != nil {
			return nil, nil, err
		}
		parts = append(parts, part)
	}
	if !r.cfg.Async {
		offsets, errs := r.appendAndWait(topic, msgs, parts)
		return offsets, errs, nil
	}
	return nil, nil, r.publishAsyncParts(msgs, parts)
}

// EnsurePartitions records the partition count of topic on the server, or
// compares it with the one there, once per topic.
func (r *Registry) EnsurePartitions(ctx context.Context, topic string) error {
	if _, ok := r.partitioned.Load(topic); ok {
		return nil
	}
	parts := r.cfg.Parts
	t, err := parts.Topic(topic)
	if err != nil {
		return err
	}
	if err := partition.Ensure(ctx, parts.Client, parts.Retry, t, r.cfg.Partitions); err != nil {
		return r.cfg.Errorf(err, "partitions of %q (nothing published)", topic)
	}
	r.partitioned.Store(topic, true)
	return nil
}

// closePartitions closes every partition stream of topic, final (if not
// nil) the last message of its key's partition, marshaled and validated
// before any partition is closed. The partitions are closed even when some
// fail; the error names those closed and those not.
func (r *Registry) closePartitions(ctx context.Context, topic string, final *message.Message) error {
	if err := r.EnsurePartitions(ctx, topic); err != nil {
		return err
	}
	n := r.cfg.Partitions
	finalPart := -1
	var payload []byte
	if final != nil {
		finalPart = partition.Of(r.cfg.PartitionKey(topic, final), n)
		part, err := r.prepare(partition.StreamName(topic, finalPart, n), []*message.Message{final}, nil)
		if err != nil {
			return r.cfg.Errorf(err, "close stream %q: final message (no partition closed)", topic)
		}
		r.release(part.tp)
		payload = part.payloads[0]
	}
	return partition.CloseAll(topic, n, func(k int) error {
		var m *message.Message
		var body []byte
		if k == finalPart {
			m, body = final, payload
		}
		_, err := r.closeStream(ctx, partition.StreamName(topic, k, n), m, body)
		return err
	})
}

// PartitionCount is the partition count of topic: the configured one
// (recorded on the server as usual), or, without Partitions, the one
// recorded on the server (1 when none).
func (r *Registry) PartitionCount(ctx context.Context, topic string) (int, error) {
	if r.cfg.Partitions > 0 {
		if err := r.EnsurePartitions(ctx, topic); err != nil {
			return 0, err
		}
		return r.cfg.Partitions, nil
	}
	return r.cfg.Parts.Recorded(ctx, topic)
}
