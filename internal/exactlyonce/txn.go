package exactlyonce

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Source is what a group subscription knows about the stream it reads,
// for the outputs of its messages.
type Source struct {
	Group string
	Topic string // the input topic
	// Stream is the input stream: partition Part of Parts of Topic.
	Stream      string
	Part, Parts int
	Lease       Lease
}

// Txn travels in the context of one delivery of one input: who may
// write its outputs (the lease) and how they are numbered (the input's
// ordinal, then one index per output).
type Txn struct {
	Src     *Source
	Ordinal int64
	// Input is the input's UUID: the input itself published again (a
	// PoisonQueue) is no output of it.
	Input string
	// Armed: the ExactlyOnce middleware runs the handler; without it the
	// outputs are published as usual (at-least-once).
	Armed atomic.Bool
	// Next is the index of the input's next output.
	Next atomic.Int64
	// Publishing counts the Publish calls of this input's outputs under
	// way: more than one at a time is refused (see Outputs.Publish).
	Publishing atomic.Int32
}

type txnKey struct{}

// WithTxn gives a delivery's context its input's transaction.
func WithTxn(ctx context.Context, src *Source, ordinal int64, input string) context.Context {
	return context.WithValue(ctx, txnKey{}, &Txn{Src: src, Ordinal: ordinal, Input: input})
}

// TxnOf is the transaction of ctx, nil when none.
func TxnOf(ctx context.Context) *Txn {
	if ctx == nil {
		return nil
	}
	t, _ := ctx.Value(txnKey{}).(*Txn)
	return t
}

// ArmedTxn returns the transaction the messages of one Publish call are
// outputs of, nil when none is armed (an ordinary publish). Outputs of
// several inputs, or mixed with other messages, are refused.
func ArmedTxn(msgs []*message.Message) (*Txn, error) {
	var t *Txn
	for i, msg := range msgs {
		if msg == nil {
			return nil, nil // Publish's own checks refuse it
		}
		mt := TxnOf(msg.Context())
		if mt != nil && (!mt.Armed.Load() || msg.UUID == mt.Input) {
			mt = nil // not armed, or the input itself (a PoisonQueue)
		}
		if i > 0 && mt != t {
			return nil, fmt.Errorf("%w: one Publish call mixes outputs of different inputs (or outputs and other messages)", ErrNotExactlyOnce)
		}
		t = mt
	}
	return t, nil
}
