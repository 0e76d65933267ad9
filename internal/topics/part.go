package topics

import (
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// Part is the part of a Publish call that goes to one stream:
// marshaled, validated, and with the stream's producer acquired (the
// caller releases it).
type Part struct {
	Topic    *Topic
	Payloads [][]byte
	// Idx[j] is the index in the call of the part's message j; nil when
	// the part is the whole call.
	Idx []int
}

// Index is the index in the call of the part's message j.
func (b Part) Index(j int) int {
	if b.Idx == nil {
		return j
	}
	return b.Idx[j]
}

// Owners tells the producer of each of the call's n messages.
func Owners(n int, parts []Part) func(int) *Topic {
	if len(parts) <= 1 && parts[0].Idx == nil {
		return func(int) *Topic { return parts[0].Topic }
	}
	owners := make([]*Topic, n)
	for _, part := range parts {
		for j := range part.Payloads {
			owners[part.Index(j)] = part.Topic
		}
	}
	return func(i int) *Topic { return owners[i] }
}

// Append appends the messages of one stream's part, each reporting to w.
func (r *Registry) Append(msgs []*message.Message, part Part, w *Waiter) {
	for j, payload := range part.Payloads {
		i := part.Index(j)
		if err := part.Topic.Producer.AppendValidated(msgs[i].Context(), payload, w.Done(i)); err != nil {
			// This message and the rest of its stream's part were not
			// appended; the earlier ones are buffered and will be
			// written: wait for them so the caller learns their fate
			// too.
			w.Set(i, "", r.cfg.Public(err))
			for k := j + 1; k < len(part.Payloads); k++ {
				w.Set(part.Index(k), "", fmt.Errorf("%w: not appended after message %s failed", protocol.ErrNotPublished, msgs[i].UUID))
			}
			return
		}
	}
}
