package topics

import (
	"context"
	"errors"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// CloseStream closes topic's stream for good, after every message
// published to it so far, with final (when not nil) as its last message,
// and returns its final offset; with Partitions > 1 it closes every
// partition stream of topic and returns "".
func (r *Registry) CloseStream(ctx context.Context, topic string, final *message.Message) (string, error) {
	if r.cfg.Partitions > 1 {
		return "", r.closePartitions(ctx, topic, final)
	}
	var payload []byte
	if final != nil {
		var err error
		if payload, err = r.cfg.Marshal(topic, final); err != nil {
			return "", r.cfg.Errorf(err, "marshal final message %s", final.UUID)
		}
	}
	return r.closeStream(ctx, topic, final, payload)
}

// closeStream closes the stream named stream, with payload, final
// marshaled (nil without one), as its last message. A stream closed
// already is what a close without one asks for.
func (r *Registry) closeStream(ctx context.Context, stream string, final *message.Message, payload []byte) (string, error) {
	streamURL, err := r.cfg.URL(stream)
	if err != nil {
		return "", err
	}
	tp, err := r.acquire(ctx, stream, streamURL, true)
	if errors.Is(err, protocol.ErrStreamClosed) && payload == nil {
		// Closed already, which is all a close-only call asks for.
		offset, _, terr := r.cfg.Producer.Client.Tail(ctx, streamURL)
		if terr == nil {
			return offset, nil
		}
	}
	if err != nil {
		return "", r.cfg.Errorf(r.cfg.Public(err), "close stream %q", stream)
	}
	defer r.release(tp)
	if payload != nil {
		if err := tp.producer.Validate(payload); err != nil {
			return "", r.cfg.Errorf(err, "final message %s", final.UUID)
		}
	}
	offset, err := tp.producer.CloseStream(ctx, payload)
	if err != nil {
		return "", r.cfg.Errorf(r.cfg.Public(err), "close stream %q", stream)
	}
	r.cfg.Logger.Info("Stream closed", watermill.LogFields{
		"topic":      stream,
		"stream_url": tp.redactedURL,
		"offset":     offset,
	})
	return offset, nil
}
