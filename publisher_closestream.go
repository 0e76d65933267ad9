package durablestreams

import (
	"context"
	"errors"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// CloseStream closes the topic's stream for good (EOF), after every message
// published to it so far, with final as its last message when not nil. It
// returns the stream's final offset once an answer shows the stream
// closed. Later publishes to the topic fail with ErrStreamClosed; readers
// see the end of the stream. It is idempotent: called again it returns the
// final offset (with a final message, only while the topic's producer that
// closed it is alive). A failed close leaves the topic usable; an error
// matching ErrOutcomeUnknown means the stream may have been closed.
//
// With Partitions > 1 it closes every partition stream of topic, each as
// above: final, marshaled and validated before any is closed, is the last
// message of its key's partition. No one offset describes the topic's
// streams, so it returns "" on success. When some partitions fail to
// close, the others are closed anyway, and the error names both; calling
// CloseStream again closes the rest.
func (p *Publisher) CloseStream(ctx context.Context, topic string, final *message.Message) (string, error) {
	if p.closed.Load() {
		return "", ErrPublisherClosed
	}
	if err := checkTopic(topic); err != nil {
		return "", err
	}
	p.root.Note()
	if p.config.Partitions > 1 {
		return "", p.closePartitions(ctx, topic, final)
	}
	var payload []byte
	if final != nil {
		var err error
		if payload, err = p.config.Marshaler.Marshal(topic, final); err != nil {
			return "", errorf(err, "marshal final message %s", final.UUID)
		}
	}
	return p.closeStream(ctx, topic, final, payload)
}

// closeStream closes the stream named stream, with payload, final
// marshaled (nil without one), as its last message.
func (p *Publisher) closeStream(ctx context.Context, stream string, final *message.Message, payload []byte) (string, error) {
	streamURL, err := topicURL(p.config.BaseURL, p.config.TopicURL, stream)
	if err != nil {
		return "", err
	}
	tp, err := p.topics.Acquire(ctx, stream, streamURL, true)
	if errors.Is(err, ErrStreamClosed) && payload == nil {
		// Closed already, which is all a close-only call asks for.
		offset, _, terr := p.client.Tail(ctx, streamURL)
		if terr == nil {
			return offset, nil
		}
	}
	if err != nil {
		return "", errorf(p.mapErr(err), "close stream %q", stream)
	}
	defer p.topics.Release(tp)
	if payload != nil {
		if err := tp.Producer.Validate(payload); err != nil {
			return "", errorf(err, "final message %s", final.UUID)
		}
	}
	offset, err := tp.Producer.CloseStream(ctx, payload)
	if err != nil {
		return "", errorf(p.mapErr(err), "close stream %q", stream)
	}
	p.logger.Info("Stream closed", watermill.LogFields{
		"topic":      stream,
		"stream_url": tp.RedactedURL,
		"offset":     offset,
	})
	return offset, nil
}
