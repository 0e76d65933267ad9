// Package subscription reads one stream and delivers its messages one at
// a time, for the root package's Subscriber: a plain Subscribe, or one
// stream a consumer group member owns. It keeps the position (committed
// through Config.Store), rides out outages, applies the lost-position and
// poison policies, and puts each delivery's exactly-once transaction in
// its context (Config.WithDelivery). It imports nothing of the root: the
// root resolves its settings into a Config.
package subscription

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/durablestreams/watermill-durablestreams/internal/group"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
)

// errStopped ends a subscription on the OnUnmarshalError hook's word.
var errStopped = errors.New("subscription stopped by OnUnmarshalError")

// errStopping ends a read that a stop asked for: no message is in hand.
var errStopping = errors.New("subscription stopping")

// Subscription reads one stream and delivers its messages, one at a time:
// a plain Subscribe, or one stream a consumer group member owns.
//
// It ends in one of two ways. A stop (the Subscribe context, Close, a
// lease handed over) ends reading and sending at once, but a message
// already in a handler's hands is waited for, up to HandoverTimeout, so
// that its ack counts and the next reader does not get it again. A kill (a
// lease lost to another member) ends everything at once and cancels the
// context of the message in hand.
type Subscription struct {
	cfg Config
	// positions stores where the subscription stands (nil: nowhere, a
	// subscription without a group or checkpoint).
	positions *committer
	// hard ends the message in hand at once (a lease lost); it outlives
	// the stop (the ctx of Run) by up to HandoverTimeout otherwise.
	hard context.Context

	// pos is where the subscription stands: Skip messages after Offset are
	// consumed (acked, or skipped as poison). Reading again from pos and
	// passing over Skip messages resumes exactly.
	pos Pos
	// started: the stream was found, so a 404 means it was deleted.
	started bool
	// outage: the server could not be reached since the stream was last
	// found missing or lost (see lostOrVanished).
	outage bool
}

// Run reads and delivers until ctx (the stop) ends, the stream ends or an
// error ends the subscription, then stores the position reached. hard
// (the kill) ends the message in hand at once.
func (sub *Subscription) Run(ctx, hard context.Context) {
	sub.hard = hard
	defer sub.finish()
	failures := 0 // in a row: a read that moved the position resets it
	for {
		before := sub.pos
		mark := sub.cfg.Client.Reach.Outages()
		err := sub.consume(ctx)
		if err == nil {
			sub.cfg.Logger.Info("Stream closed, subscription ends", sub.cfg.Fields)
			return
		}
		if ctx.Err() != nil || sub.hard.Err() != nil || errors.Is(err, errStopping) {
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
			sub.cfg.Logger.Error("Subscription ends on an error", err, sub.cfg.Fields)
			return
		}
		if protocol.Sleep(ctx, wait) != nil {
			return
		}
	}
}

// finish stores the position reached: the write in flight lands, then
// the last position is written, before a lease is handed over.
func (sub *Subscription) finish() {
	if sub.positions == nil {
		return
	}
	if err := sub.positions.close(); err != nil && !errors.Is(err, group.ErrFenced) {
		sub.cfg.Logger.Error("Could not store the final position; the messages after the last stored one may come again", err, sub.cfg.Fields)
	}
}

// retryWait says whether a failed read is tried again from the position
// reached, and after how long.
func (sub *Subscription) retryWait(err error, failures int) (time.Duration, bool) {
	backoff := sub.cfg.Client.Retry.Backoff(failures)
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
		sub.cfg.Logger.Debug("Read failed; reading again from the position", sub.cfg.Fields.Add(watermill.LogFields{"reason": err.Error()}))
		return backoff, true
	case errors.Is(err, protocol.ErrStreamNotFound) && !sub.started:
		sub.cfg.Logger.Debug("Stream does not exist yet, waiting for it", sub.cfg.Fields)
		return min(backoff, time.Second), true
	case errors.Is(err, protocol.ErrRetriesExhausted):
		sub.cfg.Logger.Error("Reading the stream keeps failing; trying again", err, sub.cfg.Fields)
		return max(sub.cfg.MaxBackoff, time.Second), true
	}
	return 0, false
}

// consume reads from pos until EOF (nil) or an error. A decoder reads
// and unmarshals ahead; consume delivers and keeps the position.
func (sub *Subscription) consume(ctx context.Context) error {
	cfg := &sub.cfg
	r, err := reader.New(reader.Config{
		URL:          sub.cfg.StreamURL,
		Offset:       sub.pos.Offset,
		Mode:         cfg.Mode,
		Client:       cfg.Client,
		LiveTimeout:  cfg.LiveTimeout,
		RetryPolicy:  sub.cfg.Client.Retry,
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
		case <-ctx.Done():
			return ctx.Err()
		}
		if !ok {
			return nil
		}
		if err := sub.consumeBatch(ctx, b, &pass, start); err != nil {
			return err
		}
	}
}

// consumeBatch delivers the frames of one decoded batch of the read that
// started at start, after passing over *pass of them (messages consumed
// before), and keeps the position.
func (sub *Subscription) consumeBatch(ctx context.Context, b batch, pass *int, start string) error {
	if b.err != nil {
		return b.err
	}
	sub.started = true
	if b.first && sub.pos.Skip == 0 && *pass == 0 && !b.carried {
		// Nothing consumed past the old offset: the read's own start
		// names the same place, and is never "now".
		sub.pos.Offset = b.chunk.Offset
	}
	for _, f := range b.frames {
		if *pass > 0 {
			*pass--
			sub.pos.Skip++
			continue
		}
		if err := sub.handle(ctx, f); err != nil {
			return err
		}
	}
	if !b.last {
		return nil
	}
	if *pass > 0 && b.chunk.UpToDate {
		return &positionLostError{
			stored: Pos{Offset: start, Skip: sub.pos.Skip + *pass}, stream: b.chunk.NextOffset,
			reason: fmt.Sprintf("only %d messages follow the offset", sub.pos.Skip),
		}
	}
	if !b.partial && *pass == 0 {
		// The whole read is consumed: its end names the place, and a
		// restart reads only what came after it.
		sub.pos = Pos{Offset: b.chunk.NextOffset, Skip: 0, N: sub.pos.N}
		sub.moved(ctx)
	}
	return nil
}

// handle delivers one decoded frame, or applies the poison policy. It
// returns once the message is acked.
func (sub *Subscription) handle(ctx context.Context, f decoded) error {
	if ctx.Err() != nil {
		return errStopping
	}
	if f.err != nil {
		hook := sub.cfg.OnUnmarshalError
		if hook == nil {
			return &undecodableError{topic: sub.cfg.Topic, pos: sub.pos, err: f.err}
		}
		if hookErr := hook(sub.cfg.Topic, f.frame, f.err); hookErr != nil {
			return fmt.Errorf("%w: %w", errStopped, hookErr)
		}
		sub.consumed(ctx)
		return nil
	}
	msg := f.msg
	msg.Metadata.Set(sub.cfg.OffsetKey, sub.pos.Offset)
	msg.Metadata.Set(sub.cfg.IndexKey, strconv.Itoa(sub.pos.Skip))
	if err := sub.deliver(ctx, msg); err != nil {
		return err
	}
	sub.consumed(ctx)
	return nil
}

// consumed counts one more message as done.
func (sub *Subscription) consumed(ctx context.Context) {
	sub.pos.Skip++
	sub.pos.N++
	sub.moved(ctx)
}

// moved hands the position to the committer, which stores it at once
// when no write is in flight (or with the next one), within
// CommitInterval, or before the next delivery (EveryAck).
func (sub *Subscription) moved(ctx context.Context) {
	if sub.positions != nil {
		sub.positions.moved(ctx, sub.pos)
	}
}
