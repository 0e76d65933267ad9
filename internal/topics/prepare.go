package topics

import (
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
)

// prepare marshals msgs (the messages of the call at idx, or the whole
// call for a nil idx) for the stream named stream, acquires its producer
// and validates them. Nothing is buffered.
func (r *Registry) prepare(stream string, msgs []*message.Message, idx []int) (prepared, error) {
	streamURL, err := r.cfg.URL(stream)
	if err != nil {
		return prepared{}, err
	}
	part := prepared{idx: idx, payloads: make([][]byte, len(msgs))}
	if idx != nil {
		part.payloads = make([][]byte, len(idx))
	}
	for j := range part.payloads {
		i := part.index(j)
		msg := msgs[i]
		if msg == nil {
			return prepared{}, fmt.Errorf("%w: publish to %q: message %d of %d", r.cfg.NilMessage, stream, i, len(msgs))
		}
		if msg.Metadata == nil {
			// A message built as a literal has no map; Publish sets the
			// offset in it.
			msg.Metadata = make(message.Metadata)
		}
		payload, err := r.cfg.Marshal(stream, msg)
		if err != nil {
			return prepared{}, r.cfg.Errorf(err, "marshal message %s", msg.UUID)
		}
		part.payloads[j] = payload
	}

	part.tp, err = r.acquire(msgs[part.index(0)].Context(), stream, streamURL, !r.cfg.Async)
	if err != nil {
		return prepared{}, r.cfg.Errorf(r.cfg.Public(err), "publish to %q", stream)
	}
	for j, payload := range part.payloads {
		if err := r.validate(part.tp, payload); err != nil {
			r.release(part.tp)
			return prepared{}, r.cfg.Errorf(err, "message %s", msgs[part.index(j)].UUID)
		}
	}
	return part, nil
}

// validate is the producer's check of a payload, before any of a
// Publish's messages is appended.
func (r *Registry) validate(tp *topicProducer, payload []byte) error {
	if r.cfg.ValidJSON {
		return tp.producer.CheckSize(payload)
	}
	return tp.producer.Validate(payload)
}
