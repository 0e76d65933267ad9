package durablestreams

import (
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/group"
)

// DefaultPartitionKeyMetadata is the metadata key a PartitionedPublisher
// reads a message's partition key from, unless configured otherwise.
const DefaultPartitionKeyMetadata = "partition_key"

// PartitionedPublisherConfig configures a PartitionedPublisher.
type PartitionedPublisherConfig struct {
	// Publisher configures the writes.
	Publisher PublisherConfig
	// Partitions is how many streams each topic spreads over (1 to 1024).
	// It is recorded on the server at the first publish to a topic; a
	// publisher or GroupSubscriber with another count gets
	// ErrPartitionMismatch.
	Partitions int
	// KeyMetadata is the metadata key holding a message's partition key.
	// Default: DefaultPartitionKeyMetadata.
	KeyMetadata string
	// Key, if set, gives a message's partition key instead of KeyMetadata.
	Key func(topic string, msg *message.Message) string
}

// PartitionedPublisher spreads each topic over Partitions streams, named
// "<topic>.p<i>" (a count of 1 keeps the topic's own stream): a message
// goes to the partition of its key (FNV-1a of the key modulo the count),
// so messages with one key keep their order; a message without a key goes
// to partition 0. Read such topics with a GroupSubscriber.
type PartitionedPublisher struct {
	config PartitionedPublisherConfig
	pub    *Publisher
	// checked: topics whose recorded count matched.
	checked sync.Map
}

var _ message.Publisher = (*PartitionedPublisher)(nil)

// NewPartitionedPublisher returns a PartitionedPublisher; a nil logger
// logs nothing.
func NewPartitionedPublisher(config PartitionedPublisherConfig, logger watermill.LoggerAdapter) (*PartitionedPublisher, error) {
	if config.Partitions < 1 || config.Partitions > group.MaxPartitions {
		return nil, invalidConfig("Partitions %d is not in 1..%d", config.Partitions, group.MaxPartitions)
	}
	if config.KeyMetadata == "" {
		config.KeyMetadata = DefaultPartitionKeyMetadata
	}
	pub, err := NewPublisher(config.Publisher, logger)
	if err != nil {
		return nil, err
	}
	return &PartitionedPublisher{config: config, pub: pub}, nil
}

// Publish writes each message to its key's partition of topic. Messages of
// one partition are published together, in order, as by
// Publisher.Publish; the partitions one by one. The error joins, per
// partition that failed, that Publish's error, which names its messages
// and whether they may have been written; messages of the other
// partitions were written.
func (p *PartitionedPublisher) Publish(topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := p.check(msgs[0], topic); err != nil {
		return err
	}
	n := p.config.Partitions
	var order []int
	parts := make(map[int][]*message.Message)
	for i, msg := range msgs {
		if msg == nil {
			return fmt.Errorf("durablestreams: publish to %q: message %d is nil", topic, i)
		}
		k := group.Partition(p.key(topic, msg), n)
		if _, ok := parts[k]; !ok {
			order = append(order, k)
		}
		parts[k] = append(parts[k], msg)
	}
	var errs []error
	for _, k := range order {
		if err := p.pub.Publish(group.StreamName(topic, k, n), parts[k]...); err != nil {
			if len(order) == 1 {
				return err
			}
			errs = append(errs, fmt.Errorf("partition %d of %q: %w", k, topic, err))
		}
	}
	return errors.Join(errs...)
}

func (p *PartitionedPublisher) key(topic string, msg *message.Message) string {
	if p.config.Key != nil {
		return p.config.Key(topic, msg)
	}
	return msg.Metadata.Get(p.config.KeyMetadata)
}

// check records the partition count of topic on the server, or compares
// it with the one there, once per topic.
func (p *PartitionedPublisher) check(msg *message.Message, topic string) error {
	if _, ok := p.checked.Load(topic); ok {
		return nil
	}
	url, err := topicURL(p.pub.config.BaseURL, p.pub.config.TopicURL, group.PartitionsStreamName(topic))
	if err != nil {
		return err
	}
	client := p.pub.client
	if err := group.EnsurePartitions(msg.Context(), client, client.Retry, url, topic, p.config.Partitions); err != nil {
		return publicError(fmt.Errorf("durablestreams: partitions of %q (nothing published): %w", topic, err))
	}
	p.checked.Store(topic, true)
	return nil
}

// Close closes the underlying Publisher (see Publisher.Close).
func (p *PartitionedPublisher) Close() error { return p.pub.Close() }
