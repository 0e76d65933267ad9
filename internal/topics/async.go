package topics

import (
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// appendAsync appends the messages of one stream's part of an async Publish
// (msgs are the call's), whose failures go to OnAsyncError. When an
// append is refused, the part's later messages are not appended: appendAsync
// returns the call's index of the refused message and why, in its
// public form.
func (r *Registry) appendAsync(msgs []*message.Message, part prepared) (int, error) {
	tp := part.tp
	for j, payload := range part.payloads {
		i := part.index(j)
		uuid := msgs[i].UUID
		done := func(_ string, err error) {
			if err != nil {
				r.asyncFailed(tp, uuid, err)
			}
		}
		if err := tp.producer.AppendValidated(msgs[i].Context(), payload, done); err != nil {
			err = r.cfg.Public(err)
			tp.noteFenced(err)
			return i, err
		}
		if r.cfg.Trace {
			r.cfg.Logger.Trace("Message buffered", watermill.LogFields{
				"topic":        tp.topic,
				"message_uuid": uuid,
				"stream_url":   tp.redactedURL,
			})
		}
	}
	return 0, nil
}

func (r *Registry) asyncFailed(tp *topicProducer, uuid string, err error) {
	err = r.cfg.Public(err)
	tp.noteFenced(err)
	if r.hooks != nil {
		r.hooks.add(hookCall{topic: tp.topic, uuid: uuid, err: err})
		return
	}
	r.cfg.Logger.Error("Async publish failed", err, watermill.LogFields{
		"topic":        tp.topic,
		"message_uuid": uuid,
		"stream_url":   tp.redactedURL,
	})
}
