package durablestreams

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
)

// errStopped ends a subscription on the OnUnmarshalError hook's word.
var errStopped = errors.New("subscription stopped by OnUnmarshalError")

// subscription is one Subscribe: a reader, and delivery of one message at
// a time.
type subscription struct {
	s         *Subscriber
	topic     string
	streamURL string
	fields    watermill.LogFields
	out       chan<- *message.Message

	// pos is where the subscription stands: Skip messages after Offset are
	// consumed (acked, or skipped as poison). Reading again from pos and
	// passing over Skip messages resumes exactly.
	pos Position
	// started: the stream was found, so a 404 means it was deleted.
	started bool
	// outage: the server could not be reached since the stream was last
	// found missing or lost (see lostOrVanished).
	outage bool
	// dirty: pos moved since it was last stored; due fires when it must
	// be stored at the latest (nil while clean).
	dirty bool
	due   *time.Timer
}

func (sub *subscription) run(ctx context.Context) {
	defer sub.commit(ctx)
	failures := 0 // in a row: a read that moved the position resets it
	for {
		before := sub.pos
		mark := sub.s.client.Reach.Outages()
		err := sub.consume(ctx)
		if err == nil {
			sub.s.logger.Info("Stream closed, subscription ends", sub.fields)
			return
		}
		if ctx.Err() != nil {
			return
		}
		if lost := sub.lostOrVanished(ctx, err, mark); lost != nil {
			if !sub.recover(ctx, lost) {
				return
			}
			continue
		}
		if sub.pos != before {
			failures = 0
		}
		failures++
		wait, again := sub.retryWait(err, failures)
		if !again {
			sub.s.logger.Error("Subscription ends on an error", err, sub.fields)
			return
		}
		if protocol.Sleep(ctx, wait) != nil {
			return
		}
	}
}

// retryWait says whether a failed read is tried again from the position
// reached, and after how long.
func (sub *subscription) retryWait(err error, failures int) (time.Duration, bool) {
	backoff := sub.s.client.Retry.Backoff(failures)
	var (
		cut  *reader.BodyError
		past *reader.PastTailError
	)
	if wait, ok := sub.unreachableWait(err, backoff); ok {
		return wait, true
	}
	switch {
	case errors.As(err, &cut) || errors.As(err, &past):
		// A body cut short, or an answer behind the stream's own tail
		// (see pastTailConfirmed).
		sub.s.logger.Debug("Read failed; reading again from the position", sub.fields.Add(watermill.LogFields{"reason": err.Error()}))
		return backoff, true
	case errors.Is(err, ErrStreamNotFound) && !sub.started:
		sub.s.logger.Debug("Stream does not exist yet, waiting for it", sub.fields)
		return min(backoff, time.Second), true
	case errors.Is(err, ErrRetriesExhausted):
		sub.s.logger.Error("Reading the stream keeps failing; trying again", err, sub.fields)
		return max(sub.s.config.RetryPolicy.MaxBackoff, time.Second), true
	}
	return 0, false
}

// consume reads from pos until EOF (nil) or an error. A decoder reads
// and unmarshals ahead; consume delivers and keeps the position.
func (sub *subscription) consume(ctx context.Context) error {
	cfg := sub.s.config
	r, err := reader.New(reader.Config{
		URL:          sub.streamURL,
		Offset:       sub.pos.Offset,
		Mode:         cfg.readMode(),
		Client:       sub.s.client,
		LiveTimeout:  cfg.LiveTimeout,
		RetryPolicy:  sub.s.client.Retry,
		MaxBodyBytes: cfg.MaxReadBytes,
	})
	if err != nil {
		return err
	}
	defer r.Close()

	pass := sub.pos.Skip // messages after pos.Offset consumed before
	sub.pos.Skip = 0
	// Whatever ends this read, the messages not yet passed over stay
	// consumed: the next read from pos passes over them again.
	defer func() { sub.pos.Skip += pass }()
	batches := make(chan batch, 1)
	decodeCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&decoder{sub: sub, r: r, pass: pass, out: batches}).run(decodeCtx)
	}()
	defer func() {
		stop()
		<-done
	}()

	start := sub.pos.Offset
	for {
		var b batch
		var ok bool
		select {
		case b, ok = <-batches:
		case <-sub.commitDue():
			sub.commit(ctx)
			continue
		case <-ctx.Done():
			return ctx.Err()
		}
		if !ok {
			return nil
		}
		if b.err != nil {
			return b.err
		}
		sub.started = true
		if b.first && sub.pos.Skip == 0 && pass == 0 && !b.carried {
			// Nothing consumed past the old offset: the read's own start
			// names the same place, and is never "now".
			sub.pos.Offset = b.chunk.Offset
		}
		for _, f := range b.frames {
			if pass > 0 {
				pass--
				sub.pos.Skip++
				continue
			}
			if err := sub.handle(ctx, f); err != nil {
				return err
			}
		}
		if !b.last {
			continue
		}
		if pass > 0 && b.chunk.UpToDate {
			return &positionLostError{
				stored: Position{Offset: start, Skip: sub.pos.Skip + pass}, stream: b.chunk.NextOffset,
				reason: fmt.Sprintf("only %d messages follow the offset", sub.pos.Skip),
			}
		}
		if !b.partial && pass == 0 {
			// The whole read is consumed: its end names the place, and a
			// restart reads only what came after it.
			sub.pos = Position{Offset: b.chunk.NextOffset, Skip: 0}
			sub.moved(ctx)
		}
	}
}

// handle delivers one decoded frame, or applies the poison policy. It
// returns once the message is acked.
func (sub *subscription) handle(ctx context.Context, f decoded) error {
	if f.err != nil {
		hook := sub.s.config.OnUnmarshalError
		if hook == nil {
			return &undecodableError{topic: sub.topic, pos: sub.pos, err: f.err}
		}
		if hookErr := hook(sub.topic, f.frame, f.err); hookErr != nil {
			return fmt.Errorf("%w: %w", errStopped, hookErr)
		}
		sub.consumed(ctx)
		return nil
	}
	msg := f.msg
	msg.Metadata.Set(MetadataOffset, sub.pos.Offset)
	msg.Metadata.Set(MetadataIndex, strconv.Itoa(sub.pos.Skip))
	if err := sub.deliver(ctx, msg); err != nil {
		return err
	}
	sub.consumed(ctx)
	return nil
}

// deliver sends a copy of msg and waits for its ack; a nack sends a fresh
// copy of msg again after NackResendDelay. msg itself never leaves here,
// so what a handler changes in a message, or writes to it after nacking,
// touches nothing sent later. A position write that falls due meanwhile
// is done.
func (sub *subscription) deliver(ctx context.Context, msg *message.Message) error {
	for {
		sent := msg.Copy()
		msgCtx, cancel := context.WithCancel(ctx)
		sent.SetContext(msgCtx)
	send:
		for {
			select {
			case sub.out <- sent:
				break send
			case <-sub.commitDue():
				sub.commit(ctx)
			case <-ctx.Done():
				cancel()
				return ctx.Err()
			}
		}
	wait:
		select {
		case <-sent.Acked():
			// No per-message log: building its fields costs more than
			// the rest of the delivery (the Router logs each message).
			cancel()
			return nil
		case <-sent.Nacked():
			cancel()
			sub.s.logger.Trace("Message nacked, sending it again", sub.fields.Add(watermill.LogFields{"message_uuid": msg.UUID}))
			if err := sub.pause(ctx, sub.s.config.NackResendDelay); err != nil {
				return err
			}
		case <-sub.commitDue():
			sub.commit(ctx)
			goto wait
		case <-ctx.Done():
			cancel()
			select {
			case <-sent.Acked():
				// Acked just before Close: select picks at random among
				// ready cases, and an ack that happened must count.
				return nil
			default:
				return ctx.Err()
			}
		}
	}
}

// pause waits d, doing a position write that falls due meanwhile.
func (sub *subscription) pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return nil
		case <-sub.commitDue():
			sub.commit(ctx)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// consumed counts one more message as done.
func (sub *subscription) consumed(ctx context.Context) {
	sub.pos.Skip++
	sub.moved(ctx)
}

// moved notes that pos moved: it is stored now (CommitEveryAck) or within
// CommitInterval.
func (sub *subscription) moved(ctx context.Context) {
	if sub.s.config.ConsumerGroup == "" {
		return
	}
	sub.dirty = true
	interval := sub.s.config.CommitInterval
	if interval == CommitEveryAck {
		sub.commit(ctx)
		return
	}
	if sub.due == nil {
		sub.due = time.NewTimer(interval)
	}
}

// commitDue fires when a moved position must be stored.
func (sub *subscription) commitDue() <-chan time.Time {
	if sub.due == nil {
		return nil
	}
	return sub.due.C
}

// commit stores the position of a consumer group if it moved. It runs
// even when the subscription is ending, so that an ack that happened is
// not forgotten; a failure only means messages may come again, and the
// position is tried again at the next commit.
func (sub *subscription) commit(ctx context.Context) {
	if sub.due != nil {
		sub.due.Stop()
		sub.due = nil
	}
	if sub.s.config.ConsumerGroup == "" || !sub.dirty {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sub.s.config.RequestTimeout)
	defer cancel()
	if err := sub.storePosition(ctx, sub.pos); err != nil {
		sub.s.logger.Error("Could not store the position; messages after it may come again", err, sub.fields)
		return
	}
	sub.dirty = false
}

// storePosition is the one place a group's position is written.
func (sub *subscription) storePosition(ctx context.Context, pos Position) error {
	cfg := sub.s.config
	return cfg.OffsetStore.Store(ctx, cfg.ConsumerGroup, sub.topic, pos)
}
