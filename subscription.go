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
var errStopped = errors.New("durablestreams: subscription stopped by OnUnmarshalError")

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
	// dirty: pos moved since it was last stored; lastCommit is when.
	dirty      bool
	lastCommit time.Time
}

func (sub *subscription) run(ctx context.Context) {
	defer sub.commit(ctx)
	cfg := sub.s.config
	failures := 0
	for {
		err := sub.consume(ctx)
		if err == nil {
			sub.s.logger.Info("Stream closed, subscription ends", sub.fields)
			return
		}
		if ctx.Err() != nil {
			return
		}
		switch {
		case errors.Is(err, ErrStreamNotFound) && !sub.started:
			failures++
			sub.s.logger.Debug("Stream does not exist yet, waiting for it", sub.fields)
			if protocol.Sleep(ctx, min(sub.s.client.Retry.Backoff(failures), time.Second)) != nil {
				return
			}
		case errors.Is(err, ErrRetriesExhausted):
			sub.s.logger.Error("Reading the stream keeps failing; trying again", err, sub.fields)
			if protocol.Sleep(ctx, max(cfg.RetryPolicy.MaxBackoff, time.Second)) != nil {
				return
			}
		default:
			sub.s.logger.Error("Subscription ends on an error", err, sub.fields)
			return
		}
	}
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
		if !b.partial {
			sub.pos = Position{Offset: b.chunk.NextOffset, Skip: 0}
		}
		if b.chunk.UpToDate {
			sub.commit(ctx)
		}
	}
}

// split cuts whole frames off buf and returns them and the rest.
func (sub *subscription) split(buf []byte, atEOF bool) ([][]byte, []byte, error) {
	splitter, ok := sub.s.config.Unmarshaler.(FrameSplitter)
	if !ok {
		return nil, nil, fmt.Errorf("%w: the stream is in byte mode, but the Unmarshaler %T is no FrameSplitter", ErrInvalidConfig, sub.s.config.Unmarshaler)
	}
	var frames [][]byte
	for len(buf) > 0 {
		advance, frame, err := splitter.Split(buf, atEOF)
		if err != nil {
			return nil, nil, fmt.Errorf("durablestreams: split frames of %q: %w", sub.topic, err)
		}
		if advance <= 0 || advance > len(buf) {
			if atEOF {
				return nil, nil, fmt.Errorf("durablestreams: %q ends in %d bytes that are no whole frame", sub.topic, len(buf))
			}
			break
		}
		if frame != nil {
			frames = append(frames, frame)
		}
		buf = buf[advance:]
	}
	// Keep the partial frame in a buffer of its own: buf may share memory
	// with frames handed out.
	return frames, append([]byte(nil), buf...), nil
}

// handle delivers one decoded frame, or applies the poison policy. It
// returns once the message is acked (and its position stored).
func (sub *subscription) handle(ctx context.Context, f decoded) error {
	if f.err != nil {
		if hook := sub.s.config.OnUnmarshalError; hook != nil {
			if hookErr := hook(sub.topic, f.frame, f.err); hookErr != nil {
				return fmt.Errorf("%w: %w", errStopped, hookErr)
			}
		} else {
			sub.s.logger.Error("Skipping a message that does not unmarshal", f.err, sub.fields.Add(watermill.LogFields{"offset": sub.pos.Offset, "skip": sub.pos.Skip}))
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

// deliver sends msg and waits for its ack; a nack sends it again after
// NackResendDelay.
func (sub *subscription) deliver(ctx context.Context, msg *message.Message) error {
	for {
		msgCtx, cancel := context.WithCancel(ctx)
		msg.SetContext(msgCtx)
		select {
		case sub.out <- msg:
		case <-ctx.Done():
			cancel()
			return ctx.Err()
		}
		select {
		case <-msg.Acked():
			// No per-message log: building its fields costs more than
			// the rest of the delivery (the Router logs each message).
			cancel()
			return nil
		case <-msg.Nacked():
			cancel()
			sub.s.logger.Trace("Message nacked, sending it again", sub.fields.Add(watermill.LogFields{"message_uuid": msg.UUID}))
			if err := protocol.Sleep(ctx, sub.s.config.NackResendDelay); err != nil {
				return err
			}
			msg = msg.Copy()
		case <-ctx.Done():
			cancel()
			select {
			case <-msg.Acked():
				// Acked just before Close: select picks at random among
				// ready cases, and an ack that happened must count.
				return nil
			default:
				return ctx.Err()
			}
		}
	}
}

// consumed counts one more message as done and stores the position when
// CommitInterval says so.
func (sub *subscription) consumed(ctx context.Context) {
	sub.pos.Skip++
	if sub.s.config.ConsumerGroup == "" {
		return
	}
	sub.dirty = true
	if time.Since(sub.lastCommit) >= sub.s.config.CommitInterval {
		sub.commit(ctx)
	}
}

// commit stores the position of a consumer group if it moved. It runs
// even when the subscription is ending, so that an ack that happened is
// not forgotten; a failure only means messages may come again.
func (sub *subscription) commit(ctx context.Context) {
	cfg := sub.s.config
	if cfg.ConsumerGroup == "" || !sub.dirty {
		return
	}
	sub.dirty = false
	sub.lastCommit = time.Now()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.RequestTimeout)
	defer cancel()
	if err := cfg.OffsetStore.Store(ctx, cfg.ConsumerGroup, sub.topic, sub.pos); err != nil {
		sub.s.logger.Error("Could not store the position; messages after it may come again", err, sub.fields)
	}
}
