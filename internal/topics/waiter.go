package topics

import (
	"context"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/producer"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// waiter collects the results of one synchronous Publish.
type waiter struct {
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

// newWaiter returns a waiter of the results of n messages.
func newWaiter(n int) *waiter {
	w := &waiter{all: make(chan struct{}), remaining: n}
	if n == 1 {
		w.results = w.one[:]
	} else {
		w.results = make([]waitResult, n)
	}
	return w
}

// Done records message i's result.
func (w *waiter) done(i int) producer.DoneFunc {
	return func(offset string, err error) { w.set(i, offset, err) }
}

// Set records message i's result, unless it has one.
func (w *waiter) set(i int, offset string, err error) {
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
func (w *waiter) wait(msgs []*message.Message) []error {
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
				w.set(j, "", fmt.Errorf("%w: stopped waiting for message %s when the context of message %s ended (%v); it may still be written",
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
func (w *waiter) offset(i int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.results[i].offset
}
