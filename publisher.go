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
	// partitioned: topics whose recorded partition count matched.
	partitioned sync.Map
	// eoCounts: partition counts of exactly-once output topics.
	eoCounts sync.Map
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
	p.topics = topics.New(topics.Config{
		Producer: producer.Config{
			ContentType:      config.Marshaler.ContentType(),
			ProducerID:       config.ProducerID,
			AutoClaim:        !config.DisableAutoClaim,
			Linger:           config.Linger,
			MaxBatchBytes:    config.MaxBatchBytes,
			MaxInFlight:      config.MaxInFlight,
			MaxBufferedBytes: config.MaxBufferedBytes,
			Retry:            client.Retry,
			Client:           client,
		},
		Logger:       logger,
		Reach:        client.Reach,
		IdleTimeout:  config.IdleProducerTimeout,
		CloseTimeout: config.CloseTimeout,
		Create:       p.createStream,
		Public:       p.mapErr,
		Wrap:         wrap,
		Closed:       ErrPublisherClosed,
	})
	logger.Debug("Durable Streams publisher created", watermill.LogFields{
		"producer_id":  config.ProducerID,
		"content_type": config.Marshaler.ContentType(),
		"async":        config.Async,
	})
	return p, nil
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
	if t, err := armedTxn(msgs); err != nil || t != nil {
		if err != nil {
			return errorf(err, "publish to %q", topic)
		}
		return p.publishExactlyOnce(topic, t, msgs)
	}
	if p.config.Partitions > 0 {
		return p.publishPartitioned(topic, msgs)
	}
	return p.publish(topic, msgs)
}

// publish appends msgs to the stream named topic.
func (p *Publisher) publish(topic string, msgs []*message.Message) error {
	part, err := p.prepare(topic, msgs, nil)
	if err != nil {
		return err
	}
	defer p.topics.Release(part.Topic)
	if p.config.Async {
		return p.publishAsync(part.Topic, msgs, part.Payloads)
	}
	return p.publishSync(topic, msgs, []topics.Part{part})
}

// prepare marshals msgs (the messages of the call at idx, or the whole
// call for a nil idx) for the stream named stream, acquires its producer
// and validates them. Nothing is buffered.
func (p *Publisher) prepare(stream string, msgs []*message.Message, idx []int) (topics.Part, error) {
	streamURL, err := topicURL(p.config.BaseURL, p.config.TopicURL, stream)
	if err != nil {
		return topics.Part{}, err
	}
	part := topics.Part{Idx: idx, Payloads: make([][]byte, len(msgs))}
	if idx != nil {
		part.Payloads = make([][]byte, len(idx))
	}
	for j := range part.Payloads {
		i := part.Index(j)
		msg := msgs[i]
		if msg == nil {
			return topics.Part{}, fmt.Errorf("%w: publish to %q: message %d of %d", ErrNilMessage, stream, i, len(msgs))
		}
		if msg.Metadata == nil {
			// A message built as a literal has no map; Publish sets the
			// offset in it.
			msg.Metadata = make(message.Metadata)
		}
		payload, err := p.config.Marshaler.Marshal(stream, msg)
		if err != nil {
			return topics.Part{}, errorf(err, "marshal message %s", msg.UUID)
		}
		part.Payloads[j] = payload
	}

	part.Topic, err = p.topics.Acquire(msgs[part.Index(0)].Context(), stream, streamURL, !p.config.Async)
	if err != nil {
		return topics.Part{}, errorf(p.mapErr(err), "publish to %q", stream)
	}
	for j, payload := range part.Payloads {
		if err := p.validate(part.Topic, payload); err != nil {
			p.topics.Release(part.Topic)
			return topics.Part{}, errorf(err, "message %s", msgs[part.Index(j)].UUID)
		}
	}
	return part, nil
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

// validate is the producer's check of a payload, before any of a
// Publish's messages is appended.
func (p *Publisher) validate(tp *topics.Topic, payload []byte) error {
	if p.validJSON {
		return tp.Producer.CheckSize(payload)
	}
	return tp.Producer.Validate(payload)
}

// publishSync appends the call's parts, one per stream, and waits for
// every message of the call: a failure is a *PublishError over the whole
// call, in its order, for topic; with parts of other streams than topic
// (partitions), each message's error names its stream.
func (p *Publisher) publishSync(topic string, msgs []*message.Message, parts []topics.Part) error {
	w := topics.NewWaiter(len(msgs))
	for _, part := range parts {
		p.topics.Append(msgs, part, w)
	}
	owner := topics.Owners(len(msgs), parts)
	var pubErr *PublishError
	if errs := w.Wait(msgs); errs != nil {
		pubErr = &PublishError{Topic: topic, UUIDs: make([]string, len(msgs)), Errs: errs}
		for i, e := range errs {
			pubErr.UUIDs[i] = msgs[i].UUID
			if e != nil {
				tp := owner(i)
				errs[i] = p.mapErr(e)
				tp.NoteFenced(e)
				if tp.Name != topic {
					errs[i] = wrap(errs[i], "stream %q", tp.Name)
				}
			}
		}
	}
	for i, msg := range msgs {
		if pubErr != nil && pubErr.Errs[i] != nil {
			continue
		}
		msg.Metadata.Set(MetadataOffset, w.Offset(i))
		// A message passed on from a Subscriber carries the index of its
		// old position, which means nothing next to the new offset.
		delete(msg.Metadata, MetadataIndex)
		if !p.trace {
			continue
		}
		tp := owner(i)
		p.logger.Trace("Message published", watermill.LogFields{
			"topic":        tp.Name,
			"message_uuid": msg.UUID,
			"stream_url":   tp.RedactedURL,
			"offset":       w.Offset(i),
		})
	}
	if pubErr != nil {
		return pubErr
	}
	return nil
}

func (p *Publisher) publishAsync(tp *topics.Topic, msgs []*message.Message, payloads [][]byte) error {
	for i, payload := range payloads {
		uuid := msgs[i].UUID
		done := func(_ string, err error) {
			if err != nil {
				p.asyncFailed(tp, uuid, err)
			}
		}
		if err := tp.Producer.AppendValidated(msgs[i].Context(), payload, done); err != nil {
			return p.appendErr(tp, msgs[i], err)
		}
		if p.trace {
			p.logger.Trace("Message buffered", watermill.LogFields{
				"topic":        tp.Name,
				"message_uuid": uuid,
				"stream_url":   tp.RedactedURL,
			})
		}
	}
	return nil
}

func (p *Publisher) asyncFailed(tp *topics.Topic, uuid string, err error) {
	err = p.mapErr(err)
	tp.NoteFenced(err)
	if p.config.OnAsyncError != nil {
		p.config.OnAsyncError(tp.Name, uuid, err)
		return
	}
	p.logger.Error("Async publish failed", err, watermill.LogFields{
		"topic":        tp.Name,
		"message_uuid": uuid,
		"stream_url":   tp.RedactedURL,
	})
}

// appendErr maps a producer error to what Publish returns and logs a
// fencing once per producer.
func (p *Publisher) appendErr(tp *topics.Topic, msg *message.Message, err error) error {
	err = p.mapErr(err)
	tp.NoteFenced(err)
	if msg != nil {
		return errorf(err, "publish %s to %q", msg.UUID, tp.Name)
	}
	return errorf(err, "publish to %q", tp.Name)
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
	if errors.Is(err, ErrStreamClosed) {
		err = p.sealedForPartitions(ctx, topic, err)
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
