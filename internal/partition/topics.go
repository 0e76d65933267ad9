package partition

import (
	"context"
	"sync"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

// Topics names the streams of a Publisher's topics and remembers the
// partition counts recorded for them on the server.
type Topics struct {
	Client *protocol.Client
	Retry  retry.Policy
	// URL maps a stream's name to its URL.
	URL func(stream string) (string, error)
	// recorded: topic → its recorded count, 1 when none (Recorded).
	recorded sync.Map
}

// Topic names the streams Ensure touches for topic.
func (ts *Topics) Topic(topic string) (Topic, error) { return TopicAt(topic, ts.URL) }

// TopicAt names the streams Ensure touches for topic, url mapping a
// stream's name to its URL.
func TopicAt(topic string, url func(stream string) (string, error)) (Topic, error) {
	recordURL, err := url(RecordName(topic))
	if err != nil {
		return Topic{}, err
	}
	streamURL, err := url(topic)
	if err != nil {
		return Topic{}, err
	}
	return Topic{Name: topic, RecordURL: recordURL, StreamURL: streamURL}, nil
}

// Recorded is the partition count recorded on the server for topic, 1
// when none is; it is loaded once per topic.
func (ts *Topics) Recorded(ctx context.Context, topic string) (int, error) {
	if n, ok := ts.recorded.Load(topic); ok {
		return n.(int), nil
	}
	t, err := ts.Topic(topic)
	if err != nil {
		return 0, err
	}
	n, ok, err := Load(ctx, ts.Client, ts.Retry, t.RecordURL)
	if err != nil {
		return 0, err
	}
	if !ok {
		n = 1
	}
	ts.recorded.Store(topic, n)
	return n, nil
}

// Sealed explains a closed topic stream met by a Publisher without
// partitions: when the topic is partitioned, its own stream is sealed so
// that nothing is written where no member reads, and the error says to
// set Partitions (a *MismatchError). Otherwise err stands.
func (ts *Topics) Sealed(ctx context.Context, topic string, err error) error {
	t, terr := ts.Topic(topic)
	if terr != nil {
		return err
	}
	n, ok, lerr := Load(ctx, ts.Client, ts.Retry, t.RecordURL)
	if lerr != nil || !ok || n <= 1 {
		return err
	}
	return &MismatchError{Topic: topic, Recorded: n}
}
