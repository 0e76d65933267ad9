package durablestreams

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/exactlyonce"
	"github.com/durablestreams/watermill-durablestreams/internal/partition"
	"github.com/durablestreams/watermill-durablestreams/internal/producer"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/internal/topics"
)

// Publisher is a Watermill message.Publisher that appends to Durable
// Streams: each topic is a stream, written by an idempotent producer of its
// own, so retries never duplicate a message. It is safe for concurrent use.
type Publisher struct {
	config PublisherConfig
	logger watermill.LoggerAdapter
	client *protocol.Client
	// ownHTTP: the HTTP client is ours, so Close drops its idle connections.
	ownHTTP bool
	// validJSON: the marshaler's output is valid JSON by construction, so
	// only its size is checked (the producer's JSON check is the costliest
	// step of a Publish).
	validJSON bool
	// trace: the logger may keep Trace entries; building one per message
	// costs several allocations.
	trace bool

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	topics  *topics.Registry
	streams *protocol.StreamSettings
	root    *protocol.RootCheck
	// parts names the streams of partitioned topics and remembers the
	// counts recorded for them.
	parts *partition.Topics
	// outputs publishes the outputs of consumer-group inputs exactly once.
	outputs *exactlyonce.Outputs
}

var _ message.Publisher = (*Publisher)(nil)

// PublishError is what a synchronous Publish returns when not every
// message was acknowledged: the outcome of each message, in the order of
// the call. errors.Is and errors.As see every message's error, so
// errors.Is(err, ErrOutcomeUnknown) tells whether any message may have
// been written without an acknowledgement.
type PublishError struct {
	// Topic the messages were published to: with Partitions, the topic,
	// whose partition streams the messages' errors name.
	Topic string
	// UUIDs of the call's messages, in order.
	UUIDs []string
	// Errs[i] is nil when the server acknowledged message i (it is in the
	// stream exactly once), and otherwise why it was not: an error matching
	// ErrOutcomeUnknown when it may have been written, any other error when
	// it was not.
	Errs []error
}

// Acknowledged returns the indices of the messages the server acknowledged.
func (e *PublishError) Acknowledged() []int {
	var out []int
	for i, err := range e.Errs {
		if err == nil {
			out = append(out, i)
		}
	}
	return out
}

func (e *PublishError) Error() string {
	var failed []string
	for i, err := range e.Errs {
		if err != nil {
			// One "durablestreams:" prefix for the whole message.
			failed = append(failed, fmt.Sprintf("message %d (%s): %s", i, e.UUIDs[i], unprefixed{err}.Error()))
		}
	}
	return fmt.Sprintf("durablestreams: publish to %q: %d of %d message(s) not acknowledged: %s",
		e.Topic, len(failed), len(e.Errs), strings.Join(failed, "; "))
}

// Unwrap returns the errors of the messages that were not acknowledged.
func (e *PublishError) Unwrap() []error {
	var out []error
	for _, err := range e.Errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// NewPublisher returns a Publisher. A nil logger logs nothing.
func NewPublisher(config PublisherConfig, logger watermill.LoggerAdapter) (*Publisher, error) {
	config.setDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	if config.ProducerID == "" {
		config.ProducerID = "watermill-" + watermill.NewUUID()
	}
	client, ownHTTP := config.client(logger)
	p := &Publisher{
		config:    config,
		logger:    logger,
		client:    client,
		ownHTTP:   ownHTTP,
		validJSON: marshalsValidJSON(config.Marshaler),
		trace:     !isNopLogger(logger),
		streams:   &protocol.StreamSettings{Client: client, Logger: logger, Strict: config.StrictStreamSettings},
		root:      &protocol.RootCheck{Base: config.BaseURL, Logger: logger},
	}
	p.parts = &partition.Topics{Client: client, Retry: client.Retry, URL: p.streamURL}
	p.topics = topics.New(p.registryConfig())
	p.outputs = p.exactlyOnceOutputs()
	logger.Debug("Durable Streams publisher created", watermill.LogFields{
		"producer_id":  config.ProducerID,
		"content_type": config.Marshaler.ContentType(),
		"async":        config.Async,
	})
	return p, nil
}

// registryConfig is what the topic registry needs of p, with the hooks
// that word its errors as this package does.
func (p *Publisher) registryConfig() topics.Config {
	return topics.Config{
		Producer:     p.config.producerConfig(p.client),
		Logger:       p.logger,
		Reach:        p.client.Reach,
		IdleTimeout:  p.config.IdleProducerTimeout,
		CloseTimeout: p.config.CloseTimeout,
		Create:       p.createStream,
		Public:       p.mapErr,
		Wrap:         wrap,
		Closed:       ErrPublisherClosed,
		Trace:        p.trace,
		OnAsyncError: p.config.OnAsyncError,
		Publishing: topics.Publishing{
			URL:          p.streamURL,
			Marshal:      p.config.Marshaler.Marshal,
			ValidJSON:    p.validJSON,
			Async:        p.config.Async,
			Partitions:   p.config.Partitions,
			PartitionKey: p.config.partitionKey,
			Parts:        p.parts,
			Errorf:       errorf,
			NilMessage:   ErrNilMessage,
		},
	}
}

// exactlyOnceOutputs is what publishing exactly once needs of p.
func (p *Publisher) exactlyOnceOutputs() *exactlyonce.Outputs {
	return &exactlyonce.Outputs{
		Env:              exactlyonce.Env{Client: p.client, Logger: p.logger, ContentType: p.config.Marshaler.ContentType()},
		Trace:            p.trace,
		URL:              p.streamURL,
		Marshal:          p.config.Marshaler.Marshal,
		ValidJSON:        p.validJSON,
		Partitions:       p.topics.PartitionCount,
		PartitionKey:     p.config.partitionKey,
		Errorf:           errorf,
		NotCoPartitioned: ErrNotCoPartitioned,
	}
}

// Publish appends msgs to the topic's stream, in order. Every message is
// marshaled and validated before any is buffered: a bad message fails the
// call and nothing of it is written.
//
// By default Publish returns once the server has acknowledged every
// message, and sets MetadataOffset on each; concurrent calls share
// batches. When not every message was acknowledged it returns a
// *PublishError with each message's outcome. Each message's Context bounds
// its wait: when it ends, the messages without a result fail with an error
// matching ErrOutcomeUnknown, since they may still be written. Every
// other error means "not written". A server that cannot be reached fails
// the call within RetryPolicy.MaxUnreachable (10s) with an error matching
// ErrServerUnreachable, and ErrNotStreamEndpoint tells a BaseURL where no
// stream endpoint answers. With Async, Publish returns once the messages
// are buffered, also before the stream exists, and OnAsyncError gets the
// failures.
//
// With Partitions, each message goes to its key's partition of topic (see
// PublisherConfig.Partitions), and the above holds for the call as a
// whole: every message is marshaled and validated before any partition is
// written, and a *PublishError covers every message of the call, in its
// order, each failed message's error naming its partition stream. The
// acknowledged messages of a call that returns a *PublishError have their
// MetadataOffset set too.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if p.closed.Load() {
		return ErrPublisherClosed
	}
	if err := checkTopic(topic); err != nil {
		return err
	}
	p.root.Note()
	if len(msgs) == 0 {
		return nil
	}
	if t, err := exactlyonce.ArmedTxn(msgs); err != nil || t != nil {
		if err != nil {
			return errorf(err, "publish to %q", topic)
		}
		return p.outputs.Publish(topic, t, msgs)
	}
	offsets, errs, err := p.topics.Publish(topic, msgs)
	if err != nil || offsets == nil {
		return err
	}
	return published(topic, msgs, offsets, errs)
}

func isNopLogger(l watermill.LoggerAdapter) bool {
	switch l.(type) {
	case watermill.NopLogger, *watermill.NopLogger:
		return true
	}
	return false
}

// marshalsValidJSON reports whether m always produces valid JSON
// (FuzzJSONRoundTrip checks it). It names exact types: a type that embeds
// one of them may marshal otherwise.
func marshalsValidJSON(m Marshaler) bool {
	switch m.(type) {
	case JSONMarshaler, *JSONMarshaler:
		return true
	}
	return false
}

// published sets the offsets of a synchronous Publish's messages, and
// returns a *PublishError over the whole call, in its order, for topic,
// unless every message was acknowledged.
func published(topic string, msgs []*message.Message, offsets []string, errs []error) error {
	for i, msg := range msgs {
		if errs != nil && errs[i] != nil {
			continue
		}
		msg.Metadata.Set(MetadataOffset, offsets[i])
		// A message passed on from a Subscriber carries the index of its
		// old position, which means nothing next to the new offset.
		delete(msg.Metadata, MetadataIndex)
	}
	if errs == nil {
		return nil
	}
	e := &PublishError{Topic: topic, UUIDs: make([]string, len(msgs)), Errs: errs}
	for i, msg := range msgs {
		e.UUIDs[i] = msg.UUID
	}
	return e
}

// mapErr turns the producer's closed error into ErrPublisherClosed when the
// producer was closed because the Publisher was. An error that may have
// been written keeps its meaning: it must not read as "closed".
func (p *Publisher) mapErr(err error) error {
	if !errors.Is(err, ErrOutcomeUnknown) && errors.Is(err, producer.ErrProducerClosed) && p.closed.Load() {
		return fmt.Errorf("%w: %w", ErrPublisherClosed, err)
	}
	return err
}

// createStream creates a topic's stream for the registry, its error
// worded for users: when the Publisher's Close cut it short, it matches
// ErrPublisherClosed.
func (p *Publisher) createStream(ctx context.Context, topic, streamURL string) error {
	err := p.streams.Ensure(ctx, topic, streamURL, p.config.streamOptions())
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrStreamClosed) && p.config.Partitions == 0 {
		err = p.parts.Sealed(ctx, topic, err)
	}
	err = wrap(rootHint(p.root, err), "create stream for %q", topic)
	if ctx.Err() != nil {
		err = fmt.Errorf("%w: creating the stream of %q was cut short: %v", ErrPublisherClosed, topic, err)
	}
	return err
}

// Flush waits until every message published to any topic so far is
// acknowledged, and returns the errors of those that failed, per topic,
// with the public types Publish's errors have (errors.As finds *HTTPError).
// It is useful with Async; a synchronous Publish has nothing left to flush.
func (p *Publisher) Flush(ctx context.Context) error {
	if p.closed.Load() {
		return ErrPublisherClosed
	}
	if err := p.topics.Flush(ctx); err != nil {
		return errorf(err, "flush")
	}
	return nil
}

// Close flushes every topic's producer within CloseTimeout, stops them and
// returns what failed: the topics whose messages did not all get written,
// and stream creations it cut short. When CloseTimeout ends first, the
// error matches ErrOutcomeUnknown if a message may have been written (it was
// on the wire), else ErrPublisherClosed. Later calls to Publish return ErrPublisherClosed.
// Close is idempotent: later calls return the first call's result.
func (p *Publisher) Close() error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		ctx, cancel := detachedContext(p.config.CloseTimeout)
		defer cancel()
		if err := p.topics.Close(ctx); err != nil {
			p.closeErr = errorf(err, "close")
		}
		if p.ownHTTP {
			p.client.HTTP.CloseIdleConnections()
		}
		if p.closeErr != nil {
			p.logger.Error("Durable Streams publisher closed with errors", p.closeErr, nil)
		} else {
			p.logger.Debug("Durable Streams publisher closed", nil)
		}
	})
	return p.closeErr
}

// CloseStream closes the topic's stream for good (EOF), after every message
// published to it so far, with final as its last message when not nil. It
// returns the stream's final offset once an answer shows the stream
// closed. Later publishes to the topic fail with ErrStreamClosed; readers
// see the end of the stream. It is idempotent: called again it returns the
// final offset (with a final message, only while the topic's producer that
// closed it is alive). A failed close leaves the topic usable; an error
// matching ErrOutcomeUnknown means the stream may have been closed.
//
// With Partitions > 1 it closes every partition stream of topic, each as
// above: final, marshaled and validated before any is closed, is the last
// message of its key's partition. No one offset describes the topic's
// streams, so it returns "" on success. When some partitions fail to
// close, the others are closed anyway, and the error names both; calling
// CloseStream again closes the rest.
func (p *Publisher) CloseStream(ctx context.Context, topic string, final *message.Message) (string, error) {
	if p.closed.Load() {
		return "", ErrPublisherClosed
	}
	if err := checkTopic(topic); err != nil {
		return "", err
	}
	p.root.Note()
	return p.topics.CloseStream(ctx, topic, final)
}

// streamURL is the URL of the stream named stream.
func (p *Publisher) streamURL(stream string) (string, error) {
	return topicURL(p.config.BaseURL, p.config.TopicURL, stream)
}

// partitionedTopic names the streams partition.Ensure touches for topic.
func partitionedTopic(base string, hook func(string) (string, error), topic string) (partition.Topic, error) {
	return partition.TopicAt(topic, func(stream string) (string, error) { return topicURL(base, hook, stream) })
}
