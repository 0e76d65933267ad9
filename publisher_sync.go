package durablestreams

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/producer"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// PublishError is what a synchronous Publish returns when not every
// message was acknowledged: the outcome of each message, in the order of
// the call. errors.Is and errors.As see every message's error, so
// errors.Is(err, ErrOutcomeUnknown) tells whether any message may have
// been written without an acknowledgement.
type PublishError struct {
	// Topic the messages were published to: with Partitions, the topic,
	// whose partition streams the messages' errors name.
	Topic string
	// UUIDs of the call's messages, in order.
	UUIDs []string
	// Errs[i] is nil when the server acknowledged message i (it is in the
	// stream exactly once), and otherwise why it was not: an error matching
	// ErrOutcomeUnknown when it may have been written, any other error when
	// it was not.
	Errs []error
}

// Acknowledged returns the indices of the messages the server acknowledged.
func (e *PublishError) Acknowledged() []int {
	var out []int
	for i, err := range e.Errs {
		if err == nil {
			out = append(out, i)
		}
	}
	return out
}

func (e *PublishError) Error() string {
	var failed []string
	for i, err := range e.Errs {
		if err != nil {
			// One "durablestreams:" prefix for the whole message.
			failed = append(failed, fmt.Sprintf("message %d (%s): %s", i, e.UUIDs[i], unprefixed{err}.Error()))
		}
	}
	return fmt.Sprintf("durablestreams: publish to %q: %d of %d message(s) not acknowledged: %s",
		e.Topic, len(failed), len(e.Errs), strings.Join(failed, "; "))
}

// Unwrap returns the errors of the messages that were not acknowledged.
func (e *PublishError) Unwrap() []error {
	var out []error
	for _, err := range e.Errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

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

func newWaiter(n int) *waiter {
	w := &waiter{all: make(chan struct{}), remaining: n}
	if n == 1 {
		w.results = w.one[:]
	} else {
		w.results = make([]waitResult, n)
	}
	return w
}

// done records message i's result.
func (w *waiter) done(i int) producer.DoneFunc {
	return func(offset string, err error) { w.set(i, offset, err) }
}

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

// wait returns when every result is in, or as soon as the context of any
// message ends; a message without a result by then was handed to the
// producer and may still be written. It returns nil when every message was
// acknowledged, else a *PublishError.
func (w *waiter) wait(topic string, msgs []*message.Message) error {
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
	e := &PublishError{Topic: topic, UUIDs: make([]string, len(msgs)), Errs: make([]error, len(msgs))}
	for i, msg := range msgs {
		e.UUIDs[i] = msg.UUID
		e.Errs[i] = w.results[i].err
	}
	return e
}

func (w *waiter) offset(i int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.results[i].offset
}
