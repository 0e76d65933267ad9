package durablestreams

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/partition"
	"github.com/durablestreams/watermill-durablestreams/internal/topics"
)

// publishPartitioned writes each message to its key's partition of topic.
// Every message is marshaled and validated, and every partition's producer
// acquired, before any is buffered: a failure there fails the call and
// nothing of it is written. Then each partition gets its messages in call
// order. Synchronously, a failure is one *PublishError for the whole call,
// in its order, each message's error naming its partition stream. With
// Async, an append refused stops the call there: the partitions before it
// are buffered.
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
	idx := make(map[int][]int)
	for i, msg := range msgs {
		k := partition.Of(p.partitionKey(topic, msg), n)
		if _, ok := idx[k]; !ok {
			order = append(order, k)
		}
		idx[k] = append(idx[k], i)
	}
	parts := make([]topics.Part, 0, len(order))
	defer func() {
		for _, part := range parts {
			p.topics.Release(part.Topic)
		}
	}()
	for _, k := range order {
		part, err := p.prepare(partition.StreamName(topic, k, n), msgs, idx[k])
		if err != nil {
			return err
		}
		parts = append(parts, part)
	}
	if !p.config.Async {
		return p.publishSync(topic, msgs, parts)
	}
	for _, part := range parts {
		partMsgs := make([]*message.Message, len(part.Idx))
		for j, i := range part.Idx {
			partMsgs[j] = msgs[i]
		}
		if err := p.publishAsync(part.Topic, partMsgs, part.Payloads); err != nil {
			return err
		}
	}
	return nil
}

// closePartitions closes every partition stream of topic, final (if not
// nil) the last message of its key's partition, marshaled and validated
// before any partition is closed. The partitions are closed even when some
// fail; the error names those closed and those not.
func (p *Publisher) closePartitions(ctx context.Context, topic string, final *message.Message) error {
	if err := p.ensurePartitions(ctx, topic); err != nil {
		return err
	}
	n := p.config.Partitions
	finalPart := -1
	var payload []byte
	if final != nil {
		finalPart = partition.Of(p.partitionKey(topic, final), n)
		part, err := p.prepare(partition.StreamName(topic, finalPart, n), []*message.Message{final}, nil)
		if err != nil {
			return errorf(err, "close stream %q: final message (no partition closed)", topic)
		}
		p.topics.Release(part.Topic)
		payload = part.Payloads[0]
	}
	errs := make([]error, n)
	sem := make(chan struct{}, closeParallelism)
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var m *message.Message
			var body []byte
			if k == finalPart {
				m, body = final, payload
			}
			_, errs[k] = p.closeStream(ctx, partition.StreamName(topic, k, n), m, body)
		}()
	}
	wg.Wait()
	var closed, failed []string
	var failures []error
	for k, err := range errs {
		name := partition.StreamName(topic, k, n)
		if err == nil {
			closed = append(closed, name)
			continue
		}
		failed = append(failed, name)
		failures = append(failures, unprefixed{err})
	}
	if failures == nil {
		return nil
	}
	return &partialCloseError{topic: topic, closed: closed, failed: failed, errs: failures}
}

// closeParallelism bounds the partitions closed at a time.
const closeParallelism = 8

// partialCloseError is a CloseStream with Partitions of which some
// partitions failed to close: it names those closed and those not, and
// errors.Is sees each failure.
type partialCloseError struct {
	topic          string
	closed, failed []string
	errs           []error
}

func (e *partialCloseError) Error() string {
	closed := "none"
	if len(e.closed) > 0 {
		closed = strings.Join(e.closed, ", ")
	}
	reasons := make([]string, len(e.errs))
	for i, err := range e.errs {
		reasons[i] = err.Error()
	}
	return fmt.Sprintf("durablestreams: close stream %q: %d of %d partition(s) not closed (%s); closed: %s: %s",
		e.topic, len(e.failed), len(e.failed)+len(e.closed), strings.Join(e.failed, ", "), closed, strings.Join(reasons, "; "))
}

func (e *partialCloseError) Unwrap() []error { return e.errs }

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
	t, err := partitionedTopic(p.config.BaseURL, p.config.TopicURL, topic)
	if err != nil {
		return err
	}
	if err := partition.Ensure(ctx, p.client, p.client.Retry, t, p.config.Partitions); err != nil {
		return errorf(err, "partitions of %q (nothing published)", topic)
	}
	p.partitioned.Store(topic, true)
	return nil
}

// partitionedTopic names the streams partition.Ensure touches for topic.
func partitionedTopic(base string, hook func(string) (string, error), topic string) (partition.Topic, error) {
	recordURL, err := topicURL(base, hook, partition.RecordName(topic))
	if err != nil {
		return partition.Topic{}, err
	}
	streamURL, err := topicURL(base, hook, topic)
	if err != nil {
		return partition.Topic{}, err
	}
	return partition.Topic{Name: topic, RecordURL: recordURL, StreamURL: streamURL}, nil
}

// sealedForPartitions explains a closed topic stream met by a Publisher
// without Partitions: when the topic is partitioned, its own stream is
// sealed so that nothing is written where no member reads, and the error
// says to set Partitions (ErrPartitionMismatch). Otherwise err stands.
func (p *Publisher) sealedForPartitions(ctx context.Context, topic string, err error) error {
	if p.config.Partitions > 0 {
		return err
	}
	t, terr := partitionedTopic(p.config.BaseURL, p.config.TopicURL, topic)
	if terr != nil {
		return err
	}
	n, ok, lerr := partition.Load(ctx, p.client, p.client.Retry, t.RecordURL)
	if lerr != nil || !ok || n <= 1 {
		return err
	}
	return &partition.MismatchError{Topic: topic, Recorded: n}
}
