package subscription

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// deliver sends a copy of msg and waits for its ack; a nack sends a fresh
// copy of msg again after NackResendDelay. msg itself never leaves here,
// so what a handler changes in a message, or writes to it after nacking,
// touches nothing sent later.
//
// A stop (ctx) while the message is being sent ends at once: nobody has
// it. A stop while a handler holds it waits for its ack or nack, up to
// HandoverTimeout, with the message's context still live; a nack then is
// not resent (the next reader gets it). A kill (sub.hard) cancels the
// message's context at once.
func (sub *Subscription) deliver(ctx context.Context, msg *message.Message) error {
	for {
		if sub.cfg.Valid != nil && !sub.cfg.Valid() {
			return errStopping
		}
		sent := msg.Copy()
		msgCtx, cancel := context.WithCancel(sub.hard)
		sent.SetContext(sub.deliveryContext(msgCtx, sent.UUID))
		select {
		case sub.cfg.Out <- sent:
		case <-ctx.Done():
			cancel()
			return errStopping
		case <-sub.hard.Done():
			cancel()
			return errStopping
		}
		acked, err := sub.awaitAnswer(ctx, sent)
		cancel()
		if err != nil || acked {
			return err
		}
		sub.cfg.Logger.Trace("Message nacked, sending it again", sub.cfg.Fields.Add(watermill.LogFields{"message_uuid": msg.UUID}))
		if err := protocol.Sleep(ctx, sub.cfg.NackResendDelay); err != nil {
			return errStopping
		}
	}
}

// awaitAnswer waits for the ack (true) or nack (false) of a message a
// handler holds. A stop meanwhile grants the handler HandoverTimeout
// more; then, or at a kill, the message counts as not handled: an error.
func (sub *Subscription) awaitAnswer(ctx context.Context, sent *message.Message) (bool, error) {
	select {
	case <-sent.Acked():
		return true, nil
	case <-sent.Nacked():
		return false, nil
	case <-sub.hard.Done():
		return ackedAnyway(sent)
	case <-ctx.Done():
	}
	if sub.positions == nil {
		// Nothing is stored: nobody else would get this message again
		// because of it, and the caller is closing.
		return ackedAnyway(sent)
	}
	grace := time.NewTimer(sub.cfg.HandoverTimeout)
	defer grace.Stop()
	select {
	case <-sent.Acked():
		return true, nil
	case <-sent.Nacked():
		return false, errStopping
	case <-sub.hard.Done():
		return ackedAnyway(sent)
	case <-grace.C:
		sub.cfg.Logger.Error("A handler did not ack or nack its message within HandoverTimeout of the stop; its context is cancelled and it will be delivered again", nil,
			sub.cfg.Fields.Add(watermill.LogFields{"message_uuid": sent.UUID, "handover_timeout": sub.cfg.HandoverTimeout.String()}))
		return ackedAnyway(sent)
	}
}

// ackedAnyway settles a wait that ended for another reason: an ack that
// happened must count (select picks at random among ready cases).
func ackedAnyway(sent *message.Message) (bool, error) {
	select {
	case <-sent.Acked():
		return true, nil
	default:
		return false, errStopping
	}
}

// deliveryContext is the context of the delivery of the message uuid,
// with what WithDelivery adds (a consumer group's exactly-once
// transaction, see the root's ExactlyOnce).
func (sub *Subscription) deliveryContext(ctx context.Context, uuid string) context.Context {
	if sub.cfg.WithDelivery == nil {
		return ctx
	}
	return sub.cfg.WithDelivery(ctx, sub.pos.N, uuid)
}
