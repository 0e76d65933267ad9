package durablestreams

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/group"
)

// Defaults of a sharing ConsumerGroup (see SubscriberConfig), chosen from measurements (see
// internal/group): a dead member is replaced after about 10 s; a member
// that leaves hands over in milliseconds.
const (
	defaultSessionTimeout    = 10 * time.Second
	defaultHeartbeatInterval = time.Second
)

// ErrFenced means a member lost a stream to another (a newer owner
// claimed it, or its own session expired): it stores nothing more for that
// stream and stops reading it.
var ErrFenced = group.ErrFenced

// ErrPartitionMismatch means a topic's partition count recorded on the
// server differs from the configured one; the count of a topic never
// changes.
var ErrPartitionMismatch = group.ErrPartitionMismatch

// subscribeGroup joins the group on topic and returns the messages of
// every stream this member comes to own. The channel is closed after
// Close or when ctx is done, once this member has handed its streams over.
// The caller holds s.wg for it.
func (s *Subscriber) subscribeGroup(ctx context.Context, topic string) (<-chan *message.Message, error) {
	streams, err := s.groupStreams(ctx, topic)
	if err != nil {
		s.wg.Done()
		return nil, errorf(publicError(err), "subscribe to %q in group %q", topic, s.config.ConsumerGroup)
	}
	m, err := group.Join(ctx, group.Config{
		Client: s.client, BaseURL: s.config.BaseURL, Group: s.config.ConsumerGroup,
		Topic: topic, Streams: streams, MemberID: s.config.MemberID,
		SessionTimeout: s.config.SessionTimeout, HeartbeatInterval: s.config.HeartbeatInterval,
		RetryPolicy: s.client.Retry, Logger: s.logger,
	})
	if err != nil {
		s.wg.Done()
		return nil, errorf(publicError(err), "subscribe to %q in group %q", topic, s.config.ConsumerGroup)
	}
	s.logger.Info("Joined consumer group", watermill.LogFields{"topic": topic, "consumer_group": s.config.ConsumerGroup, "streams": len(streams)})
	out := make(chan *message.Message)
	subCtx, cancel := context.WithCancel(ctx)
	stopOnClose := context.AfterFunc(s.ctx, cancel)
	go func() {
		defer s.wg.Done()
		defer close(out)
		defer stopOnClose()
		defer cancel()
		s.member(subCtx, m, out)
	}()
	return out, nil
}

// member runs one membership: a reader per lease, until the Subscribe
// ends; then it leaves, handing every stream over.
func (s *Subscriber) member(ctx context.Context, m *group.Member, out chan<- *message.Message) {
	var leases sync.WaitGroup
	left := make(chan struct{})
	go func() {
		defer close(left)
		select {
		case <-ctx.Done():
		case <-m.Done():
			// A newer instance joined with our MemberID and took the
			// streams over: this subscription ends instead of fighting it.
			s.logger.Error("Another instance joined the consumer group with this MemberID; this subscription ends (give every live instance its own MemberID)", m.Err(),
				watermill.LogFields{"member_id": m.ID(), "consumer_group": s.config.ConsumerGroup})
		}
		// A fresh context: the Subscribe's is done, and handing over
		// is what a clean stop is for.
		leaveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.leaveTimeout())
		defer cancel()
		if err := m.Leave(leaveCtx); err != nil {
			s.logger.Error("Leaving the consumer group failed; others take over after the session timeout", err, nil)
		}
	}()
	for l := range m.Assignments() {
		leases.Add(1)
		go func() {
			defer leases.Done()
			s.lease(ctx, l, out)
		}()
	}
	<-left
	leases.Wait()
}

func (s *Subscriber) leaveTimeout() time.Duration {
	if s.config.SessionTimeout > 0 {
		return s.config.SessionTimeout
	}
	return defaultSessionTimeout
}

// lease reads one owned stream with a Subscriber of its own, whose
// positions go through the lease (fenced), and forwards its messages while
// the lease is valid.
func (s *Subscriber) lease(ctx context.Context, l *group.Lease, out chan<- *message.Message) {
	fields := watermill.LogFields{"stream": l.Stream(), "epoch": l.Epoch(), "consumer_group": s.config.ConsumerGroup}
	cfg := s.config
	// A position-only reader of one stream: the group's settings are ours.
	cfg.MemberID, cfg.SessionTimeout, cfg.HeartbeatInterval, cfg.Partitions = "", 0, 0, 0
	// Recorded even when the member is leaving already: once it owned the
	// stream, a later owner must go on from this member's start.
	posCtx, cancelPos := context.WithTimeout(context.WithoutCancel(ctx), s.config.RequestTimeout)
	start, err := s.firstPosition(posCtx, l)
	cancelPos()
	if err != nil {
		s.logger.Error("Could not record where a new stream starts; handing it back", err, fields)
		s.release(ctx, l, fields)
		return
	}
	cfg.OffsetStore = leaseStore{l: l, start: start}
	cfg.HTTPClient = s.client.HTTP // shared, so closing this one keeps it
	reader, err := NewSubscriber(cfg, s.logger)
	if err != nil {
		s.logger.Error("Reading an owned stream failed to start; handing it back", err, fields)
		s.release(ctx, l, fields)
		return
	}
	defer func() { _ = reader.Close() }()
	readCtx, stop := context.WithCancel(ctx)
	defer stop()
	msgs, err := reader.Subscribe(readCtx, l.Stream())
	if err != nil {
		s.logger.Error("Reading an owned stream failed to start; handing it back", err, fields)
	} else if !forward(readCtx, l, msgs, out) {
		// The read ended on its own: the stream was closed (EOF), or an
		// error the subscription logged. Handing the stream back would
		// only have it claimed again at once, in a loop; this member keeps
		// it until it loses it or leaves.
		s.logger.Info("The subscription of an owned stream ended; keeping the stream until this member leaves", fields)
		select {
		case <-l.Done():
		case <-readCtx.Done():
		}
	}
	stop()
	if msgs != nil {
		for msg := range msgs {
			msg.Nack() // never delivered: the next owner reads it
		}
	}
	// The subscription stored its last position on the way out.
	s.release(ctx, l, fields)
}

// forward hands the lease's messages to out, one at a time, until the
// lease is revoked or lost or ctx ends (true), or the read ends on its own
// (false). A message in a handler's hands when the lease is revoked (a
// rebalance or Leave) is waited for until it is acked or nacked, so that
// the next owner, which claims the stream only once this member releases
// it, never gets it while this member still has it. A lost lease (fenced,
// its session expired) and the end of ctx (Close) do not wait: the stream
// may be another member's already, and the message's context is
// cancelled.
func forward(ctx context.Context, l *group.Lease, msgs <-chan *message.Message, out chan<- *message.Message) bool {
	for {
		var msg *message.Message
		select {
		case <-l.Done():
			return true
		case <-ctx.Done():
			return true
		case m, ok := <-msgs:
			if !ok {
				return ctx.Err() != nil
			}
			msg = m
		}
		if !l.Valid() {
			msg.Nack() // never delivered: the next owner reads it
			return true
		}
		select {
		case out <- msg:
		case <-l.Done():
			msg.Nack()
			return true
		case <-ctx.Done():
			msg.Nack()
			return true
		}
		select {
		case <-msg.Acked():
		case <-msg.Nacked():
		case <-l.Ended():
		case <-ctx.Done():
		}
	}
}

// firstPosition is the stored position of a leased stream. A stream no
// owner stored a position for yet starts where StartFrom says; with
// StartFromTail that tail is stored at once, so that a later owner goes on
// from the same place and never from a later tail (which would skip what
// came in between).
func (s *Subscriber) firstPosition(ctx context.Context, l *group.Lease) (json.RawMessage, error) {
	if l.Start() != nil || s.config.StartFrom != StartFromTail {
		return l.Start(), nil
	}
	url, err := topicURL(s.config.BaseURL, s.config.TopicURL, l.Stream())
	if err != nil {
		return nil, err
	}
	tail, exists, err := s.client.Tail(ctx, url)
	if err != nil {
		return nil, err
	}
	pos := Position{Offset: "-1"}
	if exists {
		pos.Offset = tail
	}
	raw, err := json.Marshal(pos)
	if err != nil {
		return nil, err
	}
	if err := l.Store(ctx, raw); err != nil {
		return nil, err
	}
	return raw, nil
}

func (s *Subscriber) release(ctx context.Context, l *group.Lease, fields watermill.LogFields) {
	relCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.leaveTimeout())
	defer cancel()
	if err := l.Release(relCtx, nil); err != nil {
		s.logger.Info("Stream not released (lost or unreachable): the next owner starts from the last stored position", fields.Add(watermill.LogFields{"err": err}))
	}
}

// streams lists the topic's streams: its partitions, as recorded on the
// server.
func (s *Subscriber) groupStreams(ctx context.Context, topic string) ([]string, error) {
	url, err := topicURL(s.config.BaseURL, s.config.TopicURL, group.PartitionsStreamName(topic))
	if err != nil {
		return nil, err
	}
	n := s.config.Partitions
	if n == 0 {
		got, ok, err := group.LoadPartitions(ctx, s.client, s.client.Retry, url)
		if err != nil {
			return nil, wrap(err, "partitions of %q", topic)
		}
		n = 1
		if ok {
			n = got
		}
	}
	if err := group.EnsurePartitions(ctx, s.client, s.client.Retry, url, topic, n); err != nil {
		return nil, wrap(err, "partitions of %q", topic)
	}
	return group.StreamNames(topic, n), nil
}

// initializeGroup creates the streams of every partition of topic.
func (s *Subscriber) initializeGroup(topic string) error {
	streams, err := s.groupStreams(s.ctx, topic)
	if err != nil {
		return publicError(err)
	}
	for _, stream := range streams {
		if err := s.initialize(stream); err != nil {
			return err
		}
	}
	return nil
}

// leaseStore is the OffsetStore of one lease's Subscriber: the position
// is the lease's, read from the claim (or recorded at its start) and
// written fenced.
type leaseStore struct {
	l     *group.Lease
	start json.RawMessage
}

// Load implements OffsetStore.
func (ls leaseStore) Load(_ context.Context, _, stream string) (Position, bool, error) {
	if ls.start == nil {
		return Position{}, false, nil
	}
	var pos Position
	if err := json.Unmarshal(ls.start, &pos); err != nil {
		return Position{}, false, wrap(err, "stored position of %q", stream)
	}
	return pos, true, nil
}

// Store implements OffsetStore.
func (ls leaseStore) Store(ctx context.Context, _, _ string, pos Position) error {
	raw, err := json.Marshal(pos)
	if err != nil {
		return err
	}
	return ls.l.Store(ctx, raw)
}
