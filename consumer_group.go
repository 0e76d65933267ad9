package durablestreams

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/group"
	"github.com/durablestreams/watermill-durablestreams/internal/partition"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
	"github.com/durablestreams/watermill-durablestreams/internal/subscription"
)

// ErrFenced means a member lost a stream to another (a newer owner
// claimed it, or its own session expired): it stores nothing more for that
// stream and stops reading it.
var ErrFenced = group.ErrFenced

// ErrPartitionMismatch means a topic's partition count recorded on the
// server differs from the configured one (the count of a topic never
// changes), or that a Publisher without Partitions wrote to a partitioned
// topic, whose own stream no member reads.
var ErrPartitionMismatch = partition.ErrMismatch

// subscribeGroup joins the group on topic and returns the messages of
// every stream this member comes to own. The channel is closed after
// Close or when ctx is done, once this member has handed its streams over.
// The caller entered it (see enter).
func (s *Subscriber) subscribeGroup(ctx context.Context, topic string) (<-chan *message.Message, error) {
	streams, m, err := s.join(ctx, topic)
	if err != nil {
		s.exit(topic)
		return nil, errorf(err, "subscribe to %q in group %q", topic, s.config.ConsumerGroup)
	}
	out := make(chan *message.Message)
	subCtx, cancel := context.WithCancel(ctx)
	stopOnClose := context.AfterFunc(s.ctx, cancel)
	go func() {
		// The name is free before the channel closes, so that a
		// Subscribe made as soon as it is seen closed is not refused;
		// Close returns only once the channel is closed.
		defer s.wg.Done()
		defer close(out)
		defer s.freeName(topic)
		defer stopOnClose()
		defer cancel()
		s.member(subCtx, topic, len(streams), m, out)
	}()
	return out, nil
}

// join reads the topic's partitions and joins the group on them. Close
// ends it as it ends a Subscribe loading its position
// (ErrSubscriberClosed), instead of waiting for a server that cannot be
// reached; the membership it returns lives on until Leave.
func (s *Subscriber) join(ctx context.Context, topic string) ([]string, *group.Member, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	streams, err := s.groupStreams(ctx, topic)
	var m *group.Member
	if err == nil {
		m, err = group.Join(ctx, group.Config{
			Client: s.client, BaseURL: s.config.BaseURL, Group: s.config.ConsumerGroup,
			Topic: topic, Streams: streams, MemberID: s.config.MemberID,
			SessionTimeout: s.config.SessionTimeout, HeartbeatInterval: s.config.HeartbeatInterval,
			RetryPolicy: s.client.Retry, Logger: s.logger,
		})
	}
	if err != nil && s.ctx.Err() != nil {
		return nil, nil, fmt.Errorf("%w (while joining the group on %q: %w)", ErrSubscriberClosed, topic, err)
	}
	return streams, m, err
}

// member runs one membership: a subscription per lease, until the
// Subscribe ends; then it leaves, handing every stream over.
func (s *Subscriber) member(ctx context.Context, topic string, parts int, m *group.Member, out chan<- *message.Message) {
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
		// is what a clean stop is for. Leave waits for each lease's
		// subscription to finish its message in hand and store its
		// position, then releases what is left.
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
			s.lease(ctx, topic, l, s.eoSource(topic, parts, l), out)
		}()
	}
	<-left
	leases.Wait()
}

// leaveTimeout bounds a Leave: HandoverTimeout for the messages in hand,
// and time for the final position writes, the releases and the leave
// record (group.Leave keeps the last part of it for those).
func (s *Subscriber) leaveTimeout() time.Duration {
	return s.config.HandoverTimeout + 10*time.Second
}

// lease reads one owned stream, delivering straight to out, with its
// positions stored through the lease (fenced). A handover (the lease
// revoked, or ctx done) stops it softly: the message in hand is waited
// for and its position stored before the lease is released; a lost lease
// stops it at once.
func (s *Subscriber) lease(ctx context.Context, topic string, l *group.Lease, eo *eoSource, out chan<- *message.Message) {
	fields := watermill.LogFields{"topic": topic, "stream": l.Stream(), "epoch": l.Epoch(), "consumer_group": s.config.ConsumerGroup}
	streamURL, err := topicURL(s.config.BaseURL, s.config.TopicURL, l.Stream())
	if err == nil {
		fields["stream_url"] = protocol.RedactURL(streamURL)
	}
	start, ok := s.leaseStart(ctx, l, streamURL, fields)
	if err != nil || !ok {
		if err != nil {
			s.logger.Error("An owned stream cannot be read; keeping it until this member leaves", err, fields)
		}
		s.keep(ctx, l)
		s.release(ctx, l, fields)
		return
	}
	soft, stop := context.WithCancel(ctx)
	defer stop()
	hard, kill := context.WithCancel(context.WithoutCancel(ctx))
	defer kill()
	defer onClose(l.Done(), stop)()
	defer onClose(l.Ended(), kill)()
	cfg := s.subscriptionConfig(topic, streamURL, fields, out)
	cfg.Valid, cfg.WithDelivery = l.Valid, eo.withTxn
	cfg.Store = func(ctx context.Context, pos subscription.Pos) error {
		raw, err := json.Marshal(pos)
		if err != nil {
			return err
		}
		return l.Store(ctx, raw)
	}
	subscription.New(cfg, start).Run(soft, hard)
	if soft.Err() == nil && hard.Err() == nil {
		// The read ended on its own: the stream was closed (EOF), or an
		// error the subscription logged. Handing the stream back would
		// only have it claimed again at once, in a loop; this member keeps
		// it until it loses it or leaves.
		s.logger.Info("The subscription of an owned stream ended; keeping the stream until this member leaves", fields)
		s.keep(ctx, l)
	}
	// The subscription stored its last position on the way out.
	s.release(ctx, l, fields)
}

// keep holds a lease whose stream is not read until it is handed over or
// lost, or the member leaves.
func (s *Subscriber) keep(ctx context.Context, l *group.Lease) {
	select {
	case <-l.Done():
	case <-ctx.Done():
	}
}

// onClose calls f once ch is closed, until the returned stop is called;
// stop waits for the goroutine.
func onClose(ch <-chan struct{}, f func()) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-ch:
			f()
		case <-quit:
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// leaseStart is where the owner of a lease starts: the position the
// previous owner stored, or, for a stream no owner stored a position for
// yet, where StartFrom says. With StartFromTail that tail is stored at
// once, so that a later owner goes on from the same place and never from
// a later tail (which would skip what came in between). A stored
// position that does not parse is logged at Error and OnPositionLost
// decides. ok is false when the stream is not to be read.
func (s *Subscriber) leaseStart(ctx context.Context, l *group.Lease, streamURL string, fields watermill.LogFields) (subscription.Pos, bool) {
	if raw := l.Start(); raw != nil {
		var pos subscription.Pos
		if err := json.Unmarshal(raw, &pos); err == nil && pos.Offset != "" && pos.Skip >= 0 && pos.N >= 0 {
			return pos, true
		}
		s.logger.Error("The stored position of an owned stream does not parse; OnPositionLost decides where to go on", nil,
			fields.Add(watermill.LogFields{"stored_position": string(raw)}))
		if s.config.OnPositionLost == PositionLostStop {
			return subscription.Pos{}, false
		}
		if s.config.OnPositionLost == PositionLostFromStart {
			return subscription.Pos{Offset: reader.OffsetBeginning}, true
		}
	} else if s.config.StartFrom != StartFromTail {
		return subscription.Pos{Offset: reader.OffsetBeginning}, true
	}
	// Recorded even when the member is leaving already: once it owned the
	// stream, a later owner must go on from this member's start.
	posCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.config.RequestTimeout)
	defer cancel()
	pos := subscription.Pos{Offset: reader.OffsetBeginning}
	tail, exists, err := s.client.Tail(posCtx, streamURL)
	if err == nil && exists {
		pos.Offset = tail
	}
	if err == nil {
		var raw json.RawMessage
		if raw, err = json.Marshal(pos); err == nil {
			err = l.Store(posCtx, raw)
		}
	}
	if err != nil {
		s.logger.Error("Could not record where a new stream starts; handing it back", err, fields)
		return subscription.Pos{}, false
	}
	return pos, true
}

func (s *Subscriber) release(ctx context.Context, l *group.Lease, fields watermill.LogFields) {
	relCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.config.RequestTimeout)
	defer cancel()
	if err := l.Release(relCtx, nil); err != nil {
		s.logger.Info("Stream not released (lost or unreachable): the next owner starts from the last stored position", fields.Add(watermill.LogFields{"err": err}))
	}
}

// groupStreams lists the topic's streams: its partitions, as recorded on
// the server (a topic with no record gets one of Partitions, or 1).
func (s *Subscriber) groupStreams(ctx context.Context, topic string) ([]string, error) {
	t, err := partitionedTopic(s.config.BaseURL, s.config.TopicURL, topic)
	if err != nil {
		return nil, err
	}
	n := s.config.Partitions
	if n == 0 {
		got, ok, err := partition.Load(ctx, s.client, s.client.Retry, t.RecordURL)
		if err != nil {
			return nil, wrap(err, "partitions of %q", topic)
		}
		n = 1
		if ok {
			n = got
		}
	}
	if err := partition.Ensure(ctx, s.client, s.client.Retry, t, n); err != nil {
		return nil, wrap(err, "partitions of %q", topic)
	}
	return partition.StreamNames(topic, n), nil
}

// initializeGroup creates the streams of every partition of topic.
func (s *Subscriber) initializeGroup(topic string) error {
	streams, err := s.groupStreams(s.ctx, topic)
	if err != nil {
		return err
	}
	for _, stream := range streams {
		if err := s.initialize(stream); err != nil {
			return err
		}
	}
	return nil
}
