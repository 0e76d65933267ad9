package durablestreams

import (
	"context"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/group"
)

// defaultPartitionKey is PublisherConfig.PartitionKey's default.
const defaultPartitionKey = "partition_key"

// publishPartitioned writes each message to its key's partition of topic.
// Messages of one partition are published together, in order, as by
// publish; the partitions one by one. The error joins, per partition that
// failed, that publish's error, which names its messages and whether they
// may have been written; messages of the other partitions were written.
func (p *Publisher) publishPartitioned(topic string, msgs []*message.Message) error {
	for i, msg := range msgs {
		if msg == nil {
			return fmt.Errorf("%w: publish to %q: message %d of %d", ErrNilMessage, topic, i, len(msgs))
		}
	}
	if err := p.ensurePartitions(msgs[0].Context(), topic); err != nil {
		return err
	}
	n := p.config.Partitions
	var order []int
	parts := make(map[int][]*message.Message)
	for _, msg := range msgs {
		k := group.Partition(p.partitionKey(topic, msg), n)
		if _, ok := parts[k]; !ok {
			order = append(order, k)
		}
		parts[k] = append(parts[k], msg)
	}
	var errs []error
	for _, k := range order {
		if err := p.publish(group.StreamName(topic, k, n), parts[k]); err != nil {
			if len(order) == 1 {
				return err
			}
			errs = append(errs, fmt.Errorf("partition %d of %q: %w", k, topic, err))
		}
	}
	return errors.Join(errs...)
}

func (p *Publisher) partitionKey(topic string, msg *message.Message) string {
	if p.config.PartitionFunc != nil {
		return p.config.PartitionFunc(topic, msg)
	}
	return msg.Metadata.Get(p.config.PartitionKey)
}

// ensurePartitions records the partition count of topic on the server, or
// compares it with the one there, once per topic.
func (p *Publisher) ensurePartitions(ctx context.Context, topic string) error {
	if _, ok := p.partitioned.Load(topic); ok {
		return nil
	}
	url, err := topicURL(p.config.BaseURL, p.config.TopicURL, group.PartitionsStreamName(topic))
	if err != nil {
		return err
	}
	if err := group.EnsurePartitions(ctx, p.client, p.client.Retry, url, topic, p.config.Partitions); err != nil {
		return errorf(publicError(err), "partitions of %q (nothing published)", topic)
	}
	p.partitioned.Store(topic, true)
	return nil
}
