package topics

import (
	"context"
	"fmt"
	"sync"
)

// hookQueue makes the OnAsyncError calls one at a time, in the order the
// failures came, on a goroutine of its own. A producer reports a failure
// on its own goroutine and frees the failed batch's buffer space only
// afterwards: a hook called there that published again into a full
// buffer, or called Close, would wait for that very goroutine forever.
type hookQueue struct {
	hook func(topic, uuid string, err error)

	mu      sync.Mutex
	pending []hookCall
	closed  bool

	wake chan struct{} // cap 1: pending or closed changed
	done chan struct{} // run returned
}

type hookCall struct {
	topic, uuid string
	err         error
}

func newHookQueue(hook func(topic, uuid string, err error)) *hookQueue {
	q := &hookQueue{hook: hook, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go q.run()
	return q
}

// add queues one call. After close has drained the queue (no producer
// is left to fail then), a call is made at once, on the caller's
// goroutine, rather than lost.
func (q *hookQueue) add(c hookCall) {
	q.mu.Lock()
	if q.closed {
		select {
		case <-q.done:
			q.mu.Unlock()
			q.hook(c.topic, c.uuid, c.err)
			return
		default:
		}
	}
	q.pending = append(q.pending, c)
	q.mu.Unlock()
	q.signal()
}

func (q *hookQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *hookQueue) run() {
	defer close(q.done)
	for {
		q.mu.Lock()
		calls, closed := q.pending, q.closed
		q.pending = nil
		q.mu.Unlock()
		for _, c := range calls {
			q.hook(c.topic, c.uuid, c.err)
		}
		if len(calls) > 0 {
			continue
		}
		if closed {
			return
		}
		<-q.wake
	}
}

// close waits, no longer than ctx allows, until every queued call was
// made and returned; the queue's goroutine then ends. A hook that calls
// the Publisher's Close itself makes that Close wait until ctx ends (it
// waits for its own return); the goroutine ends right after that hook.
func (q *hookQueue) close(ctx context.Context) error {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("OnAsyncError calls still running when Close's time ran out: %w", context.Cause(ctx))
	}
}
