package durablestreams

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/durablestreams/watermill-durablestreams/internal/reader"
)

// positionLostError: the stream cannot honour the position a read
// started from.
type positionLostError struct {
	stored Position
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
	pos   Position
	err   error
}

func (e *undecodableError) Error() string {
	return fmt.Sprintf("durablestreams: message %d after offset %s of %q does not unmarshal; the subscription stops before it (an OnUnmarshalError hook can skip it): %v",
		e.pos.Skip, e.pos.Offset, e.topic, e.err)
}

func (e *undecodableError) Unwrap() error { return e.err }

// recover applies OnPositionLost to a position the stream cannot honour.
// It reports whether the subscription goes on.
func (sub *subscription) recover(ctx context.Context, lost *positionLostError) bool {
	cfg := sub.s.config
	fields := sub.fields.Add(watermill.LogFields{
		"consumer_group": cfg.ConsumerGroup,
		"stored_offset":  lost.stored.Offset,
		"stored_skip":    lost.stored.Skip,
		"stream_offset":  lost.stream,
	})
	switch cfg.OnPositionLost {
	case PositionLostStop:
		sub.dirty = false // keep the stored position for an operator
		sub.s.logger.Error("The stream cannot honour the stored position; the subscription stops (OnPositionLost)", lost, fields)
		return false
	case PositionLostFromTail:
		tail, exists, err := sub.s.client.Tail(ctx, sub.streamURL)
		if err != nil {
			sub.s.logger.Error("The stream cannot honour the stored position, and its tail cannot be found", err, fields)
			return false
		}
		if !exists {
			tail = reader.OffsetBeginning
		}
		sub.s.logger.Error("The stream cannot honour the stored position; going on from its tail", lost, fields.Add(watermill.LogFields{"new_offset": tail}))
		sub.pos = Position{Offset: tail}
	default:
		sub.s.logger.Error("The stream cannot honour the stored position; reading it again from its start", lost, fields.Add(watermill.LogFields{"new_offset": reader.OffsetBeginning}))
		sub.pos = Position{Offset: reader.OffsetBeginning}
	}
	sub.moved(ctx)
	return true
}
