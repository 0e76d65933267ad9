package topics

import (
	"github.com/ThreeDotsLabs/watermill/message"
)

// Publish appends msgs to topic's stream, or with Partitions each to its
// key's partition of topic. Every message is marshaled and validated
// before any is buffered: a failure there is err, and nothing of the call
// is written. Synchronously, it then returns each message's offset, and,
// unless every one was acknowledged, each one's error (see appendAndWait).
// With Async, err is also a refused append, and then nothing of the call
// was buffered (see publishAsyncParts for a call over several partitions).
func (r *Registry) Publish(topic string, msgs []*message.Message) (offsets []string, errs []error, err error) {
	if r.cfg.Partitions > 0 {
		return r.publishPartitioned(topic, msgs)
	}
	part, err := r.prepare(topic, msgs, nil)
	if err != nil {
		return nil, nil, err
	}
	defer r.release(part.tp)
	if r.cfg.Async {
		return nil, nil, r.publishAsync(msgs, part)
	}
	offsets, errs = r.appendAndWait(topic, msgs, []prepared{part})
	return offsets, errs, nil
}

// publishAsync buffers the messages of one stream's part of the call msgs;
// OnAsyncError gets their failures.
func (r *Registry) publishAsync(msgs []*message.Message, part prepared) error {
	if i, err := r.appendAsync(msgs, part); err != nil {
		return r.cfg.Errorf(err, "publish %s to %q", msgs[i].UUID, part.tp.topic)
	}
	return nil
}
