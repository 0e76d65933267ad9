package subscription

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/durablestreams/watermill-durablestreams/internal/group"
)

// committer stores a subscription's position for it. By default
// (CommitInterval 0) it keeps one write in flight: a position that moved
// is written as soon as the previous write has landed, so that after a
// crash only the messages acked during one write's round trip (and the
// one in hand) come again, and delivery never waits for a write. With a
// CommitInterval it writes at most once per interval; with EveryAck
// it writes before the next delivery.
type committer struct {
	store    func(ctx context.Context, pos Pos) error
	interval time.Duration
	timeout  time.Duration
	logger   watermill.LoggerAdapter
	fields   watermill.LogFields

	// wmu serialises the writes, so that a later position never lands
	// before an earlier one.
	wmu sync.Mutex

	mu      sync.Mutex
	latest  Pos
	dirty   bool
	closing bool
	// failing: the last write failed (logged once, then every
	// failureLogEvery); lastLogged is when it was last said.
	failing    bool
	lastLogged time.Time

	wake chan struct{}
	done chan struct{}
}

// failureLogEvery bounds how often failing position writes are logged.
const failureLogEvery = 30 * time.Second

func newCommitter(store func(context.Context, Pos) error, interval, timeout time.Duration, logger watermill.LoggerAdapter, fields watermill.LogFields) *committer {
	c := &committer{
		store: store, interval: interval, timeout: timeout, logger: logger, fields: fields,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	if interval == EveryAck {
		close(c.done)
	} else {
		go c.run()
	}
	return c
}

// moved notes that the position is now pos.
func (c *committer) moved(ctx context.Context, pos Pos) {
	c.mu.Lock()
	c.latest, c.dirty = pos, true
	c.mu.Unlock()
	if c.interval == EveryAck {
		_ = c.flush(ctx)
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// storeNow stores pos before it returns (a start from the tail must be
// stored before anything is delivered).
func (c *committer) storeNow(ctx context.Context, pos Pos) error {
	c.mu.Lock()
	c.latest, c.dirty = pos, true
	c.mu.Unlock()
	return c.flush(ctx)
}

// flush writes the latest position if it was not written yet.
func (c *committer) flush(ctx context.Context) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	pos, dirty := c.latest, c.dirty
	c.dirty = false
	c.mu.Unlock()
	if !dirty {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancel()
	err := c.store(ctx, pos)
	c.note(pos, err)
	return err
}

// note logs a failed write (at once, then at a bounded rate) and a
// recovery, and keeps a failed position to be written again.
func (c *committer) note(pos Pos, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		if c.failing {
			c.failing = false
			c.logger.Info("Positions are stored again", c.fields)
		}
		return
	}
	if !c.dirty {
		c.latest, c.dirty = pos, true
	}
	if errors.Is(err, group.ErrFenced) {
		return // the lease is lost; its owner logs that
	}
	if !c.failing || time.Since(c.lastLogged) >= failureLogEvery {
		c.logger.Error("Could not store the position; the messages acked after the last stored one may come again", err, c.fields)
		c.lastLogged = time.Now()
	}
	c.failing = true
}

// run keeps one write in flight while the position moves.
func (c *committer) run() {
	defer close(c.done)
	for {
		<-c.wake
		c.mu.Lock()
		closing := c.closing
		c.mu.Unlock()
		if closing {
			return
		}
		wait := c.interval
		if err := c.flush(context.Background()); err != nil {
			wait = max(wait, time.Second) // a failing store is not hammered
		}
		if wait > 0 && c.sleep(wait) {
			return
		}
	}
}

// sleep waits d; true when close asked to stop meanwhile.
func (c *committer) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.mu.Lock()
			dirty := c.dirty
			c.mu.Unlock()
			if dirty {
				select {
				case c.wake <- struct{}{}: // write what moved meanwhile
				default:
				}
			}
			return false
		case <-c.wake:
			c.mu.Lock()
			closing := c.closing
			c.mu.Unlock()
			if closing {
				return true
			}
		}
	}
}

// close waits for the write in flight, then writes the last position.
func (c *committer) close() error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	<-c.done
	return c.flush(context.Background())
}
