package durablestreams

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/producer"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
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

	topics  *topicRegistry
	streams *protocol.StreamSettings
	root    *protocol.RootCheck
	// partitioned: topics whose recorded partition count matched.
	partitioned sync.Map
	// eoCounts: partition counts of exactly-once output topics.
	eoCounts sync.Map
}

var _ message.Publisher = (*Publisher)(nil)

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
	p.topics = newTopicRegistry(p)
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
	defer p.topics.release(part.tp)
	if p.config.Async {
		return p.publishAsync(part.tp, msgs, part.payloads)
	}
	return p.publishSync(topic, msgs, []prepared{part})
}

// prepared is the part of a Publish call that goes to one stream:
// marshaled, validated, and with the stream's producer acquired (the
// caller releases it).
type prepared struct {
	tp       *topicProducer
	payloads [][]byte
	// idx[j] is the index in the call of the part's message j; nil when
	// the part is the whole call.
	idx []int
}

func (b prepared) index(j int) int {
	if b.idx == nil {
		return j
	}
	return b.idx[j]
}

// prepare marshals msgs (the messages of the call at idx, or the whole
// call for a nil idx) for the stream named stream, acquires its producer
// and validates them. Nothing is buffered.
func (p *Publisher) prepare(stream string, msgs []*message.Message, idx []int) (prepared, error) {
	streamURL, err := topicURL(p.config.BaseURL, p.config.TopicURL, stream)
	if err != nil {
		return prepared{}, err
	}
	part := prepared{idx: idx, payloads: make([][]byte, len(msgs))}
	if idx != nil {
		part.payloads = make([][]byte, len(idx))
	}
	for j := range part.payloads {
		i := part.index(j)
		msg := msgs[i]
		if msg == nil {
			return prepared{}, fmt.Errorf("%w: publish to %q: message %d of %d", ErrNilMessage, stream, i, len(msgs))
		}
		if msg.Metadata == nil {
			// A message built as a literal has no map; Publish sets the
			// offset in it.
			msg.Metadata = make(message.Metadata)
		}
		payload, err := p.config.Marshaler.Marshal(stream, msg)
		if err != nil {
			return prepared{}, errorf(err, "marshal message %s", msg.UUID)
		}
		part.payloads[j] = payload
	}

	part.tp, err = p.topics.acquire(msgs[part.index(0)].Context(), stream, streamURL, !p.config.Async)
	if err != nil {
		return prepared{}, errorf(p.mapErr(err), "publish to %q", stream)
	}
	for j, payload := range part.payloads {
		if err := p.validate(part.tp, payload); err != nil {
			p.topics.release(part.tp)
			return prepared{}, errorf(err, "message %s", msgs[part.index(j)].UUID)
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
func (p *Publisher) validate(tp *topicProducer, payload []byte) error {
	if p.validJSON {
		return tp.producer.CheckSize(payload)
	}
	return tp.producer.Validate(payload)
}

// publishSync appends the call's parts, one per stream, and waits for
// every message of the call: a failure is a *PublishError over the whole
// call, in its order, for topic; with parts of other streams than topic
// (partitions), each message's error names its stream.
func (p *Publisher) publishSync(topic string, msgs []*message.Message, parts []prepared) error {
	w := newWaiter(len(msgs))
	for _, part := range parts {
		p.appendPart(msgs, part, w)
	}
	owner := partOwners(len(msgs), parts)
	err := w.wait(topic, msgs)
	var pubErr *PublishError
	if errors.As(err, &pubErr) {
		for i, e := range pubErr.Errs {
			if e != nil {
				tp := owner(i)
				pubErr.Errs[i] = p.mapErr(e)
				tp.noteFenced(e)
				if tp.topic != topic {
					pubErr.Errs[i] = wrap(pubErr.Errs[i], "stream %q", tp.topic)
				}
			}
		}
	}
	for i, msg := range msgs {
		if pubErr != nil && pubErr.Errs[i] != nil {
			continue
		}
		msg.Metadata.Set(MetadataOffset, w.offset(i))
		// A message passed on from a Subscriber carries the index of its
		// old position, which means nothing next to the new offset.
		delete(msg.Metadata, MetadataIndex)
		if !p.trace {
			continue
		}
		tp := owner(i)
		p.logger.Trace("Message published", watermill.LogFields{
			"topic":        tp.topic,
			"message_uuid": msg.UUID,
			"stream_url":   tp.redactedURL,
			"offset":       w.offset(i),
		})
	}
	return err
}

// appendPart appends the messages of one stream's part, each reporting to
// w.
func (p *Publisher) appendPart(msgs []*message.Message, part prepared, w *waiter) {
	for j, payload := range part.payloads {
		i := part.index(j)
		if err := part.tp.producer.AppendValidated(msgs[i].Context(), payload, w.done(i)); err != nil {
			// This message and the rest of its stream's part were not
			// appended; the earlier ones are buffered and will be
			// written: wait for them so the caller learns their fate
			// too.
			w.set(i, "", p.mapErr(err))
			for k := j + 1; k < len(part.payloads); k++ {
				w.set(part.index(k), "", fmt.Errorf("%w: not appended after message %s failed", ErrNotPublished, msgs[i].UUID))
			}
			return
		}
	}
}

// partOwners tells the producer of each of the call's n messages.
func partOwners(n int, parts []prepared) func(int) *topicProducer {
	if len(parts) <= 1 && parts[0].idx == nil {
		return func(int) *topicProducer { return parts[0].tp }
	}
	owners := make([]*topicProducer, n)
	for _, part := range parts {
		for j := range part.payloads {
			owners[part.index(j)] = part.tp
		}
	}
	return func(i int) *topicProducer { return owners[i] }
}

func (p *Publisher) publishAsync(tp *topicProducer, msgs []*message.Message, payloads [][]byte) error {
	for i, payload := range payloads {
		uuid := msgs[i].UUID
		done := func(_ string, err error) {
			if err != nil {
				p.asyncFailed(tp, uuid, err)
			}
		}
		if err := tp.producer.AppendValidated(msgs[i].Context(), payload, done); err != nil {
			return p.appendErr(tp, msgs[i], err)
		}
		if p.trace {
			p.logger.Trace("Message buffered", watermill.LogFields{
				"topic":        tp.topic,
				"message_uuid": uuid,
				"stream_url":   tp.redactedURL,
			})
		}
	}
	return nil
}

func (p *Publisher) asyncFailed(tp *topicProducer, uuid string, err error) {
	err = p.mapErr(err)
	tp.noteFenced(err)
	if p.config.OnAsyncError != nil {
		p.config.OnAsyncError(tp.topic, uuid, err)
		return
	}
	p.logger.Error("Async publish failed", err, watermill.LogFields{
		"topic":        tp.topic,
		"message_uuid": uuid,
		"stream_url":   tp.redactedURL,
	})
}

// appendErr maps a producer error to what Publish returns and logs a
// fencing once per producer.
func (p *Publisher) appendErr(tp *topicProducer, msg *message.Message, err error) error {
	err = p.mapErr(err)
	tp.noteFenced(err)
	if msg != nil {
		return errorf(err, "publish %s to %q", msg.UUID, tp.topic)
	}
	return errorf(err, "publish to %q", tp.topic)
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

// Flush waits until every message published to any topic so far is
// acknowledged, and returns the errors of those that failed, per topic,
// with the public types Publish's errors have (errors.As finds *HTTPError).
// It is useful with Async; a synchronous Publish has nothing left to flush.
func (p *Publisher) Flush(ctx context.Context) error {
	if p.closed.Load() {
		return ErrPublisherClosed
	}
	if err := p.topics.flush(ctx); err != nil {
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
		if err := p.topics.close(ctx); err != nil {
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
