package durablestreams

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/group"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
	"github.com/durablestreams/watermill-durablestreams/internal/subscription"
)

// Subscriber reads topics (streams) and delivers their messages, one at a
// time per subscription: the next only after the last was acked.
//
// A subscription ends, and its channel is closed, when the Subscribe
// context is cancelled, on Close, and when the stream is closed (EOF)
// after its last message was acked. It also ends, with an error logged,
// when the stream is deleted or gone, when its data cannot be read, and
// before a message that does not unmarshal (unless
// SubscriberConfig.OnUnmarshalError skips it) or exceeds MaxReadBytes: a
// consumer group's position never moves past a message nobody handled.
// A stream that does not exist yet is waited for, and so is a server that
// cannot be reached (logged at Error). A stored position the stream cannot
// honour goes by SubscriberConfig.OnPositionLost; so does a stream found
// missing after the server could not be reached (a restart lost it).
//
// With a sharing ConsumerGroup (no OffsetStore), the Subscribe channel
// stays open while the member owns streams whose subscriptions ended on
// their own (the stream was closed and read to its end, or it stopped on
// a message that does not unmarshal): the member keeps such a stream,
// delivering nothing from it, until it loses it or leaves (Close or the
// Subscribe context), so that no other member claims it in a loop. The
// channel closes only once the member has left.
type Subscriber struct {
	config SubscriberConfig
	client *protocol.Client
	logger watermill.LoggerAdapter
	// ownHTTP: the HTTP client is ours, so Close drops its idle connections.
	ownHTTP bool

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
	// named holds the topics with a live subscription that is one named
	// member or reader (see namesOne).
	named   map[string]bool
	streams *protocol.StreamSettings
	root    *protocol.RootCheck
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
)

// NewSubscriber returns a Subscriber; a nil logger logs nothing.
func NewSubscriber(config SubscriberConfig, logger watermill.LoggerAdapter) (*Subscriber, error) {
	config.setDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	client, ownHTTP := config.client(logger)
	client.RefusedPoll = subscription.RefusedPoll
	ctx, cancel := context.WithCancel(context.Background())
	return &Subscriber{
		config:  config,
		client:  client,
		logger:  logger,
		ownHTTP: ownHTTP,
		ctx:     ctx,
		cancel:  cancel,
		streams: &protocol.StreamSettings{Client: client, Logger: logger, Strict: config.StrictStreamSettings},
		root:    &protocol.RootCheck{Base: config.BaseURL, Logger: logger},
	}, nil
}

// Subscribe starts reading topic at the group's stored position, or at
// StartFrom. With a ConsumerGroup and no OffsetStore it joins the group
// and delivers the messages of the streams this member comes to own (see
// SubscriberConfig.ConsumerGroup); the channel is closed once the member
// has handed its streams over. Messages carry MetadataOffset and MetadataIndex, which
// locate them in the stream (see PositionOf). A stream in JSON mode read
// by a byte-mode Unmarshaler, or the other way round, is
// ErrContentTypeMismatch. Close ends a Subscribe still loading its
// position or joining its group (ErrSubscriberClosed). A Subscribe that needs no answer to
// start (from the beginning, no stored position to load) returns at once
// even when the server cannot be reached; one that must ask the server
// where to start (StartFromTail, a StreamOffsetStore) waits for it at most
// RetryPolicy.MaxUnreachable (10s), then fails with ErrServerUnreachable.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := s.checkTopic(topic); err != nil {
		return nil, err
	}
	s.root.Note()
	streamURL, err := topicURL(s.config.BaseURL, s.config.TopicURL, topic)
	if err != nil {
		return nil, err
	}
	if err := s.enter(topic); err != nil {
		return nil, err
	}
	if s.config.sharesWork() {
		return s.subscribeGroup(ctx, topic)
	}

	fields := watermill.LogFields{"topic": topic, "stream_url": protocol.RedactURL(streamURL)}
	if s.config.Checkpoint != "" {
		fields["checkpoint"] = s.config.Checkpoint
	}
	start, err := s.prepare(ctx, topic, streamURL)
	if err != nil {
		s.exit(topic)
		return nil, errorf(rootHint(s.root, err), "subscribe to %q", topic)
	}

	subCtx, cancel := context.WithCancel(ctx)
	stopOnClose := context.AfterFunc(s.ctx, cancel)
	out := make(chan *message.Message)
	cfg := s.subscriptionConfig(topic, streamURL, fields, out)
	if s.config.Checkpoint != "" {
		cfg.Store = func(ctx context.Context, pos subscription.Pos) error {
			return s.config.OffsetStore.Store(ctx, s.config.Checkpoint, topic, Position{Offset: pos.Offset, Skip: pos.Skip})
		}
	}
	sub := subscription.New(cfg, subscription.Pos{Offset: start.Offset, Skip: start.Skip})
	s.logger.Info("Subscribing", fields.Add(watermill.LogFields{"offset": start.Offset, "skip": start.Skip}))
	go func() {
		// The name is free before the channel closes, so that a
		// Subscribe made as soon as it is seen closed is not refused;
		// Close returns only once the channel is closed.
		defer s.wg.Done()
		defer close(out)
		defer s.freeName(topic)
		defer stopOnClose()
		defer cancel()
		hard, kill := context.WithCancel(context.WithoutCancel(subCtx))
		defer kill()
		sub.Run(subCtx, hard)
		s.logger.Debug("Subscription ended", fields)
	}()
	return out, nil
}

// enter counts a new subscription to topic in, unless the Subscriber is
// closed or the subscription would be a second one under one name: a
// MemberID names one member of a group (a second live one supersedes the
// first), a Checkpoint one reader (two would store each other's
// positions). exit counts it out.
func (s *Subscriber) enter(topic string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrSubscriberClosed
	}
	if s.config.namesOne() {
		if s.named[topic] {
			return invalidConfig("this Subscriber already has a live subscription to %q as %s: it names one %s. "+
				"End that subscription first, or use a Subscriber per %[3]s", topic, s.config.oneName(), s.config.oneKind())
		}
		if s.named == nil {
			s.named = map[string]bool{}
		}
		s.named[topic] = true
	}
	s.wg.Add(1)
	return nil
}

func (s *Subscriber) exit(topic string) {
	s.freeName(topic)
	s.wg.Done()
}

func (s *Subscriber) freeName(topic string) {
	if s.config.namesOne() {
		s.mu.Lock()
		delete(s.named, topic)
		s.mu.Unlock()
	}
}

// subscriptionConfig configures a subscription to streamURL (topic's stream,
// or one of its partitions) with this Subscriber's settings; the caller
// adds where positions are stored, and a group's lease.
func (s *Subscriber) subscriptionConfig(topic, streamURL string, fields watermill.LogFields, out chan<- *message.Message) subscription.Config {
	c := &s.config
	return subscription.Config{
		Topic: topic, StreamURL: streamURL, Fields: fields, Logger: s.logger, Client: s.client, Out: out,
		Mode: c.readMode(), LiveTimeout: c.LiveTimeout, MaxReadBytes: c.MaxReadBytes,
		MaxBackoff: c.RetryPolicy.MaxBackoff, ContentType: c.ContentType,
		Unmarshaler: c.Unmarshaler, OnUnmarshalError: c.OnUnmarshalError,
		OffsetKey: MetadataOffset, IndexKey: MetadataIndex,
		HandoverTimeout: c.HandoverTimeout, NackResendDelay: c.NackResendDelay,
		LostGoOnFrom:   c.OnPositionLost.goOnFrom(),
		CommitInterval: c.CommitInterval, CommitTimeout: c.RequestTimeout,
	}
}

// prepare finds where a subscription starts and checks that the stream
// is in the mode the Unmarshaler reads. Close ends it, as the caller's
// context does.
func (s *Subscriber) prepare(ctx context.Context, topic, streamURL string) (Position, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	// The mode first: its one HEAD tells (and the log says) at once when
	// the server cannot be reached, while finding the position may wait
	// for it up to RetryPolicy.MaxUnreachable.
	err := s.checkMode(ctx, topic, streamURL)
	var pos Position
	var fresh bool
	if err == nil {
		pos, fresh, err = s.startPosition(ctx, topic, streamURL)
	}
	if err == nil && fresh {
		err = s.storeStart(ctx, topic, pos)
	}
	if err != nil && s.ctx.Err() != nil {
		return Position{}, fmt.Errorf("%w (while preparing %q: %w)", ErrSubscriberClosed, topic, err)
	}
	return pos, err
}

// checkMode fails when the stream exists in JSON mode and the Unmarshaler
// reads bytes, or the other way round: the messages would come out as
// something else (envelopes as lines) or not at all. A stream that does
// not exist yet is checked at its first read.
func (s *Subscriber) checkMode(ctx context.Context, topic, streamURL string) error {
	ct, err := s.client.ContentType(ctx, streamURL)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrNotStreamEndpoint) {
			return err // no read would do better
		}
		// Missing, or not answering now: the first read checks again.
		return nil
	}
	return subscription.ModeMismatch(topic, protocol.IsJSON(ct), ct, s.config.ContentType)
}

// startPosition is the checkpoint's stored position or, for a checkpoint
// that has none yet and anyone else, where StartFrom says. fresh: a
// checkpoint starts at the tail and has stored no position yet; prepare
// stores it.
func (s *Subscriber) startPosition(ctx context.Context, topic, streamURL string) (pos Position, fresh bool, err error) {
	if s.config.Checkpoint != "" {
		pos, ok, err := s.config.OffsetStore.Load(ctx, s.config.Checkpoint, topic)
		if err != nil {
			if _, named := s.config.OffsetStore.(*StreamOffsetStore); !named {
				// A StreamOffsetStore's error names the checkpoint and topic itself.
				err = wrap(err, "load position of checkpoint %q in %q", s.config.Checkpoint, topic)
			}
			return Position{}, false, err
		}
		if ok {
			return pos, false, nil
		}
	}
	if s.config.StartFrom != StartFromTail {
		return Position{Offset: reader.OffsetBeginning}, false, nil
	}
	fresh = s.config.Checkpoint != ""
	// The tail is taken now, not at the first read, so that nothing
	// appended between Subscribe and that read is missed. A stream that
	// does not exist yet has no tail: all it will hold comes later.
	tail, exists, err := subscription.TailAtSubscribe(ctx, s.client, s.logger, topic, streamURL)
	if err != nil {
		return Position{}, false, wrap(err, "find the tail of %q", topic)
	}
	if !exists {
		return Position{Offset: reader.OffsetBeginning}, fresh, nil
	}
	return Position{Offset: tail}, fresh, nil
}

// storeStart stores the tail a checkpoint starts from, before anything is
// delivered: otherwise a run that stops before its first commit stores
// nothing, and the next one starts from a later tail, skipping what was
// published in between.
func (s *Subscriber) storeStart(ctx context.Context, topic string, pos Position) error {
	ctx, cancel := context.WithTimeout(ctx, s.config.RequestTimeout)
	defer cancel()
	if err := s.config.OffsetStore.Store(ctx, s.config.Checkpoint, topic, pos); err != nil {
		return wrap(err, "store the start position of checkpoint %q in %q", s.config.Checkpoint, topic)
	}
	return nil
}

// SubscribeInitialize creates the topic's stream (with a sharing
// ConsumerGroup: the stream of each partition) with ContentType,
// StreamTTL and StreamExpiresAt if it is missing, so that what is
// published before the first Subscribe is kept. A stream that exists with
// another TTL or expiry is used as it is (a warning logged once per topic
// at Info: Watermill's LoggerAdapter has no Warn level),
// unless StrictStreamSettings asks for ErrStreamConflict.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	if err := s.checkTopic(topic); err != nil {
		return err
	}
	s.root.Note()
	if s.config.sharesWork() {
		return s.initializeGroup(topic)
	}
	return s.initialize(topic)
}

// checkTopic rejects a reserved topic (see ErrInvalidTopic) and, in a
// consumer group, a topic the group's streams cannot be named after.
func (s *Subscriber) checkTopic(topic string) error {
	if err := checkTopic(topic); err != nil {
		return err
	}
	if s.config.sharesWork() {
		if reason := group.TopicProblem(topic); reason != "" {
			return &InvalidTopicError{Topic: topic, Reason: "cannot name a consumer group's streams: it " + reason}
		}
	}
	return nil
}

func (s *Subscriber) initialize(topic string) error {
	streamURL, err := topicURL(s.config.BaseURL, s.config.TopicURL, topic)
	if err != nil {
		return err
	}
	err = s.streams.Ensure(s.ctx, topic, streamURL, s.config.streamOptions())
	if err != nil {
		return errorf(rootHint(s.root, err), "initialize %q", topic)
	}
	return nil
}

// Close ends every subscription, closing their channels, and waits for
// them. It is safe to call more than once, also at once: every call
// returns once every subscription has ended.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		// A later Close returns, as the first does, once every
		// subscription has ended (no Subscribe adds one after closed).
		s.wg.Wait()
		return nil
	}
	s.closed = true
	s.mu.Unlock()

	s.cancel()
	s.wg.Wait()
	if s.ownHTTP {
		s.client.HTTP.CloseIdleConnections()
	}
	s.logger.Debug("Subscriber closed", nil)
	return nil
}
