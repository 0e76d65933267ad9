package subscription

import (
	"context"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
)

// positionLostError: the stream cannot honour the position a read
// started from.
type positionLostError struct {
	stored Pos
	stream string // the stream's end as the read saw it, if known
	reason string
}

func (e *positionLostError) Error() string {
	return fmt.Sprintf("position {%s %d} is not in the stream: %s", e.stored.Offset, e.stored.Skip, e.reason)
}

// undecodableError: a message the Unmarshaler rejects, with no
// OnUnmarshalError hook to decide about it.
type undecodableError struct {
	topic string
	pos   Pos
	err   error
}

func (e *undecodableError) Error() string {
	return fmt.Sprintf("message %d after offset %s of %q does not unmarshal; the subscription stops before it (an OnUnmarshalError hook can skip it): %v",
		e.pos.Skip, e.pos.Offset, e.topic, e.err)
}

func (e *undecodableError) Unwrap() error { return e.err }

// lostPosition tells whether a failed read means the stream cannot
// honour the position it started from.
func (sub *Subscription) lostPosition(ctx context.Context, err error) *positionLostError {
	var (
		lost *positionLostError
		past *reader.PastTailError
	)
	switch {
	case errors.As(err, &lost):
		return lost
	case errors.As(err, &past):
		if sub.pastTailConfirmed(ctx, past) {
			return &positionLostError{stored: sub.pos, stream: past.Tail, reason: past.Error()}
		}
	case errors.Is(err, protocol.ErrStreamNotFound) && sub.started:
		// The stream was there and is gone: deleted (a new one may come
		// at its URL), or a server that lost its data.
		reason := "the stream was deleted: "
		if sub.outage {
			reason = "the stream is missing after the server could not be reached (a restart lost it?): "
		}
		return &positionLostError{stored: sub.pos, reason: reason + err.Error()}
	case sub.pos.Offset != reader.OffsetBeginning && (errors.Is(err, protocol.ErrStreamGone) || reader.Rejected(err)):
		return &positionLostError{stored: sub.pos, reason: err.Error()}
	}
	return nil
}

// recover applies OnPositionLost to a position the stream cannot honour.
// It reports whether the subscription goes on.
func (sub *Subscription) recover(ctx context.Context, lost *positionLostError) bool {
	cfg := &sub.cfg
	// Whatever comes next reads a stream that may not exist (yet): it is
	// waited for.
	sub.started = false
	fields := sub.cfg.Fields.Add(watermill.LogFields{
		"stored_offset": lost.stored.Offset,
		"stored_skip":   lost.stored.Skip,
		"stream_offset": lost.stream,
	})
	switch cfg.LostGoOnFrom {
	case "":
		sub.cfg.Logger.Error("The stream cannot honour the stored position; the subscription stops (OnPositionLost)", lost, fields)
		return false
	case reader.OffsetNow:
		tail, exists, err := sub.cfg.Client.Tail(ctx, sub.cfg.StreamURL)
		if err != nil {
			sub.cfg.Logger.Error("The stream cannot honour the stored position, and its tail cannot be found", err, fields)
			return false
		}
		if !exists {
			tail = reader.OffsetBeginning
		}
		sub.cfg.Logger.Error("The stream cannot honour the stored position; going on from its tail", lost, fields.Add(watermill.LogFields{"new_offset": tail}))
		sub.pos = Pos{Offset: tail, N: sub.pos.N}
		// Stored at once, as a StartFromTail start is: a run that stopped
		// before its next commit would leave the lost position, and the
		// next run would go on from a later tail, skipping what came in
		// between.
		if sub.positions != nil {
			_ = sub.positions.storeNow(ctx, sub.pos)
		}
		return true
	default:
		sub.cfg.Logger.Error("The stream cannot honour the stored position; reading it again from its start", lost, fields.Add(watermill.LogFields{"new_offset": reader.OffsetBeginning}))
		sub.pos = Pos{Offset: reader.OffsetBeginning, N: sub.pos.N}
	}
	sub.moved(ctx)
	return true
}

// pastTailConfirmed checks a read that answered with an end before the
// offset it asked for against the stream's tail (HEAD). The reference
// server has been seen to answer one read so around a restart of its
// own while the tail was past the offset; only a tail before the offset
// means the stream no longer reaches it.
func (sub *Subscription) pastTailConfirmed(ctx context.Context, past *reader.PastTailError) bool {
	tail, exists, err := sub.cfg.Client.Tail(ctx, sub.cfg.StreamURL)
	if err != nil || !exists {
		return false // the next read tells
	}
	if tail >= past.Offset {
		return false
	}
	past.Tail = tail
	return true
}
