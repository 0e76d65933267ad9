package topics

import (
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// appendAndWait appends the parts of a synchronous Publish to topic, one part per
// stream, and waits for every message of the call. It returns the offset
// of each message, and, unless every one was acknowledged, the error of
// each (nil for those acknowledged), in its public form; with parts of
// other streams than topic (partitions), each error names its stream.
func (r *Registry) appendAndWait(topic string, msgs []*message.Message, parts []prepared) (offsets []string, errs []error) {
	w := newWaiter(len(msgs))
	for _, part := range parts {
		r.appendPart(msgs, part, w)
	}
	owner := partOwners(len(msgs), parts)
	errs = w.wait(msgs)
	for i, e := range errs {
		if e != nil {
			tp := owner(i)
			errs[i] = r.cfg.Public(e)
			tp.noteFenced(e)
			if tp.topic != topic {
				errs[i] = r.cfg.Wrap(errs[i], "stream %q", tp.topic)
			}
		}
	}
	offsets = make([]string, len(msgs))
	for i, msg := range msgs {
		if errs != nil && errs[i] != nil {
			continue
		}
		offsets[i] = w.offset(i)
		if !r.cfg.Trace {
			continue
		}
		tp := owner(i)
		r.cfg.Logger.Trace("Message published", watermill.LogFields{
			"topic":        tp.topic,
			"message_uuid": msg.UUID,
			"stream_url":   tp.redactedURL,
			"offset":       offsets[i],
		})
	}
	return offsets, errs
}

// appendPart appends the messages of one stream's part, each reporting
// to w.
func (r *Registry) appendPart(msgs []*message.Message, part prepared, w *waiter) {
	for j, payload := range part.payloads {
		i := part.index(j)
		if err := part.tp.producer.AppendValidated(msgs[i].Context(), payload, w.done(i)); err != nil {
			// This message and the rest of its stream's part were not
			// appended; the earlier ones are buffered and will be
			// written: wait for them so the caller learns their fate
			// too.
			w.set(i, "", r.cfg.Public(err))
			for k := j + 1; k < len(part.payloads); k++ {
				w.set(part.index(k), "", fmt.Errorf("%w: not appended after message %s failed", protocol.ErrNotPublished, msgs[i].UUID))
			}
			return
		}
	}
}
