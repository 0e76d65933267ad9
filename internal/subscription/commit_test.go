package subscription

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// recorder is a Store that keeps what it was given.
type recorder struct {
	mu     sync.Mutex
	stored []Pos
}

func (r *recorder) store(_ context.Context, pos Pos) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stored = append(r.stored, pos)
	return nil
}

func (r *recorder) all() []Pos {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Pos(nil), r.stored...)
}

// TestCommitEveryAckStoresBeforeMovedReturns: with EveryAck a position is
// written before the next delivery, so moved itself writes it.
func TestCommitEveryAckStoresBeforeMovedReturns(t *testing.T) {
	r := &recorder{}
	c := newCommitter(r.store, EveryAck, time.Second, watermill.NopLogger{}, nil)
	for i := range 3 {
		c.moved(context.Background(), Pos{Offset: "0_1", Skip: i + 1, N: int64(i + 1)})
		if got := len(r.all()); got != i+1 {
			t.Fatalf("after %d moves %d writes", i+1, got)
		}
	}
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	if got := len(r.all()); got != 3 {
		t.Fatalf("close wrote again what was written: %d writes", got)
	}
}

// TestCommitCloseWritesTheLastPosition: however the writes in flight
// coalesced, close leaves the last position stored.
func TestCommitCloseWritesTheLastPosition(t *testing.T) {
	r := &recorder{}
	c := newCommitter(r.store, time.Hour, time.Second, watermill.NopLogger{}, nil)
	last := Pos{Offset: "0_9", Skip: 4, N: 40}
	for i := range 5 {
		c.moved(context.Background(), Pos{Offset: "0_9", Skip: i, N: int64(36 + i)})
	}
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	stored := r.all()
	if len(stored) == 0 || stored[len(stored)-1] != last {
		t.Fatalf("stored %v, want %v last", stored, last)
	}
}
