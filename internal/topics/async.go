package topics

import (
	"context"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/producer"
)

// appendAsync buffers one stream's part of an async Publish (msgs are the
// call's), all or nothing; their failures go to OnAsyncError. When the
// producer refuses the part, none of it is buffered: appendAsync returns
// the call's index of the message to name (the first whose context ended,
// else the part's first) and why, in its public form.
func (r *Registry) appendAsync(msgs []*message.Message, part prepared) (int, error) {
	i, err := r.bufferAsync(msgs, part)
	if err != nil {
		err = r.cfg.Public(err)
		part.tp.noteFenced(err)
	}
	return i, err
}

// publishAsyncParts buffers the parts of a partitioned async Publish, one
// stream each, in order. Each part is all or nothing, the call cannot be:
// Publish returns an error only when nothing of the call was buffered, so
// when the first part is refused. A later part refused after earlier ones
// were buffered does not stop the call: its messages reach OnAsyncError
// (not written), the parts after it are buffered as usual, and Publish
// returns nil.
func (r *Registry) publishAsyncParts(msgs []*message.Message, parts []prepared) error {
	for k, part := range parts {
		if k == 0 {
			if err := r.publishAsync(msgs, part); err != nil {
				return err
			}
			continue
		}
		if _, err := r.bufferAsync(msgs, part); err != nil {
			for j := range part.payloads {
				r.asyncFailed(part.tp, msgs[part.index(j)].UUID, err)
			}
		}
	}
	return nil
}

// bufferAsync is appendAsync with the producer's own error, as asyncFailed
// takes it.
func (r *Registry) bufferAsync(msgs []*message.Message, part prepared) (int, error) {
	tp := part.tp
	dones := make([]producer.DoneFunc, len(part.payloads))
	for j := range part.payloads {
		uuid := msgs[part.index(j)].UUID
		dones[j] = func(_ string, err error) {
			if err != nil {
				r.asyncFailed(tp, uuid, err)
			}
		}
	}
	ctx, stop := partContext(msgs, part)
	err := tp.producer.AppendAllValidated(ctx, part.payloads, dones)
	ended := ctx.Err() != nil
	stop()
	if err != nil {
		for j := range part.payloads {
			if i := part.index(j); ended && msgs[i].Context().Err() != nil {
				return i, err
			}
		}
		return part.index(0), err
	}
	if r.cfg.Trace {
		for j := range part.payloads {
			r.cfg.Logger.Trace("Message buffered", watermill.LogFields{
				"topic":        tp.topic,
				"message_uuid": msgs[part.index(j)].UUID,
				"stream_url":   tp.redactedURL,
			})
		}
	}
	return 0, nil
}

// partContext is a context that ends when the context of any message of
// part does, with its cause: a part waits for buffer space no longer than
// any of its messages would. stop releases it.
func partContext(msgs []*message.Message, part prepared) (context.Context, func()) {
	var ctxs []context.Context
	seen := make(map[<-chan struct{}]bool, 1)
	for j := range part.payloads {
		ctx := msgs[part.index(j)].Context()
		if ctx.Done() == nil || seen[ctx.Done()] {
			continue
		}
		seen[ctx.Done()] = true
		ctxs = append(ctxs, ctx)
	}
	switch len(ctxs) {
	case 0:
		return context.Background(), func() {}
	case 1:
		return ctxs[0], func() {}
	}
	merged, cancel := context.WithCancelCause(context.Background())
	stops := make([]func() bool, len(ctxs))
	for k, ctx := range ctxs {
		stops[k] = context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	}
	return merged, func() {
		for _, stop := range stops {
			stop()
		}
		cancel(nil)
	}
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
