package topics

import (
	"context"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/producer"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// Waiter collects the results of one synchronous Publish.
type Waiter struct {
	mu        sync.Mutex
	remaining int
	results   []waitResult
	all       chan struct{}
	one       [1]waitResult
}

type waitResult struct {
	offset string
	err    error
	have   bool
}

// NewWaiter returns a Waiter of the results of n messages.
func NewWaiter(n int) *Waiter {
	w := &Waiter{all: make(chan struct{}), remaining: n}
	if n == 1 {
		w.results = w.one[:]
	} else {
		w.results = make([]waitResult, n)
	}
	return w
}

// Done records message i's result.
func (w *Waiter) Done(i int) producer.DoneFunc {
	return func(offset string, err error) { w.Set(i, offset, err) }
}

// Set records message i's result, unless it has one.
func (w *Waiter) Set(i int, offset string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.results[i].have {
		return
	}
	w.results[i] = waitResult{offset: offset, err: err, have: true}
	w.remaining--
	if w.remaining == 0 {
		close(w.all)
	}
}

// Wait returns when every result is in, or as soon as the context of any
// message ends; a message without a result by then was handed to the
// producer and may still be written. It returns nil when every message was
// acknowledged, else the error of each message, in order (nil for those
// acknowledged).
func (w *Waiter) Wait(msgs []*message.Message) []error {
	var stops []func() bool
	seen := make(map[<-chan struct{}]bool, 1)
	for _, msg := range msgs {
		ctx := msg.Context()
		if seen[ctx.Done()] || ctx.Done() == nil {
			continue
		}
		seen[ctx.Done()] = true
		uuid := msg.UUID
		stops = append(stops, context.AfterFunc(ctx, func() {
			for j := range msgs {
				w.Set(j, "", fmt.Errorf("%w: stopped waiting for message %s when the context of message %s ended (%v); it may still be written",
					protocol.ErrOutcomeUnknown, msgs[j].UUID, uuid, ctx.Err()))
			}
		}))
	}
	<-w.all
	for _, stop := range stops {
		stop()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	failed := false
	for _, r := range w.results {
		failed = failed || r.err != nil
	}
	if !failed {
		return nil
	}
	errs := make([]error, len(msgs))
	for i := range msgs {
		errs[i] = w.results[i].err
	}
	return errs
}

// Offset is message i's offset, once acknowledged.
func (w *Waiter) Offset(i int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.results[i].offset
}
