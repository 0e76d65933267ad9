package durablestreams

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/producer"
)

// waiter collects the results of one synchronous Publish. A call with one
// message, the usual case, keeps its result inline.
type waiter struct {
	remaining atomic.Int64
	results   []waitResult
	all       chan struct{}
	one       [1]waitResult
}

type waitResult struct {
	offset string
	err    error
}

func newWaiter(n int) *waiter {
	w := &waiter{all: make(chan struct{})}
	w.remaining.Store(int64(n))
	if n == 1 {
		w.results = w.one[:]
	} else {
		w.results = make([]waitResult, n)
	}
	return w
}

// done records message i's result. Each i is written once, before the
// count that publishes it to wait (the atomic orders the two).
func (w *waiter) done(i int) producer.DoneFunc {
	return func(offset string, err error) {
		w.results[i] = waitResult{offset: offset, err: err}
		w.finish(1)
	}
}

// abandon gives up n results that will never come (not appended).
func (w *waiter) abandon(n int) { w.finish(n) }

func (w *waiter) finish(n int) {
	if w.remaining.Add(-int64(n)) == 0 {
		close(w.all)
	}
}

// wait returns when every result is in, or as soon as the context of a
// message not yet done ends. It returns the messages' errors, joined.
func (w *waiter) wait(msgs []*message.Message) error {
	for _, msg := range msgs {
		select {
		case <-w.all:
		case <-msg.Context().Done():
			return fmt.Errorf("durablestreams: waiting for message %s: %w", msg.UUID, msg.Context().Err())
		}
	}
	<-w.all
	var errs []error
	for i, r := range w.results[:len(msgs)] {
		if r.err != nil {
			errs = append(errs, fmt.Errorf("message %s: %w", msgs[i].UUID, r.err))
		}
	}
	return errors.Join(errs...)
}

func (w *waiter) offset(i int) string { return w.results[i].offset }
