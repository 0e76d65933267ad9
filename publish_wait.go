package durablestreams

import (
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/producer"
)

// waiter collects the results of one synchronous Publish: one allocation
// for the call, however many messages it has.
type waiter struct {
	mu        sync.Mutex
	remaining int
	offsets   []string
	errs      []error
	all       chan struct{}
}

func newWaiter(n int) *waiter {
	return &waiter{
		remaining: n,
		offsets:   make([]string, n),
		errs:      make([]error, n),
		all:       make(chan struct{}),
	}
}

func (w *waiter) done(i int) producer.DoneFunc {
	return func(offset string, err error) {
		w.mu.Lock()
		w.offsets[i], w.errs[i] = offset, err
		w.mu.Unlock()
		w.finish(1)
	}
}

// abandon gives up n results that will never come (not appended).
func (w *waiter) abandon(n int) { w.finish(n) }

func (w *waiter) finish(n int) {
	w.mu.Lock()
	w.remaining -= n
	last := w.remaining == 0
	w.mu.Unlock()
	if last {
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
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	for i, err := range w.errs[:len(msgs)] {
		if err != nil {
			errs = append(errs, fmt.Errorf("message %s: %w", msgs[i].UUID, err))
		}
	}
	return errors.Join(errs...)
}
