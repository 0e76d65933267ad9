package group

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// storer stores 1, 2, 3, ... on every lease of m, one after the other,
// and notes each lease and the last position the server acknowledged.
type storer struct {
	mu     sync.Mutex
	acked  int
	leases []*Lease
	stored chan int
}

func runStorer(t *testing.T, m *Member) *storer {
	st := &storer{stored: make(chan int, 1<<16)}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n := 0
		for l := range m.Assignments() {
			st.mu.Lock()
			st.leases = append(st.leases, l)
			st.mu.Unlock()
			for l.Valid() {
				n++
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := l.Store(ctx, json.RawMessage(strconv.Itoa(n)))
				cancel()
				if err != nil {
					t.Logf("store %d on epoch %d: %v", n, l.Epoch(), err)
					continue
				}
				st.mu.Lock()
				st.acked = n
				st.mu.Unlock()
				st.stored <- n
				time.Sleep(10 * time.Millisecond) // a handler's pace
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = l.Release(ctx, nil)
			cancel()
		}
	}()
	t.Cleanup(func() {
		leave(t, m)
		wg.Wait()
	})
	return st
}

func (st *storer) waitStored(t *testing.T, atLeast int, within time.Duration) {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case n := <-st.stored:
			if n >= atLeast {
				return
			}
		case <-timeout:
			t.Fatalf("no position >= %d stored within %v", atLeast, within)
		}
	}
}

func TestOwnershipSurvivesAServerCrash(t *testing.T) {
	srv := dstest.Restartable(t)
	base := srv.StreamURL(dstest.StreamPath(t))
	m := join(t, fast(t, base, "t", "a", "t"))
	st := runStorer(t, m)
	st.waitStored(t, 10, 10*time.Second)
	if err := srv.Restart(true); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	before := st.acked
	st.mu.Unlock()
	// Positions go on after the restart, on the old lease or a new claim.
	st.waitStored(t, before+10, 30*time.Second)
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, l := range st.leases[1:] {
		start, err := strconv.Atoi(string(l.Start()))
		if err != nil {
			t.Fatalf("re-claim at epoch %d starts at %q: the position was lost", l.Epoch(), l.Start())
		}
		if start < before {
			t.Errorf("re-claim at epoch %d starts at %d, before the acknowledged %d", l.Epoch(), start, before)
		}
	}
	t.Logf("%d leases across the crash (epochs of re-claims show the server's producer state: a 409 ends a lease)", len(st.leases))
	for _, l := range st.leases {
		t.Logf("  epoch %d start %s err %v", l.Epoch(), l.Start(), l.Err())
	}
}

func TestForgottenProducerStateEndsTheLeaseAndTheMemberClaimsAgain(t *testing.T) {
	srv := dstest.Faults(t)
	base := srv.StreamURL(dstest.StreamPath(t))
	m := join(t, fast(t, base, "t", "a", "t"))
	st := runStorer(t, m)
	st.waitStored(t, 5, 10*time.Second)
	// What the server answers when it forgot this producer (PROTOCOL.md
	// §5.2.1 cleanup): a 409 sequence gap. The fault keeps the request
	// from the store, so nothing is written.
	ctx := context.Background()
	if err := srv.InjectFault(ctx, dstest.Fault{Path: m.cfg.logURL("t", 0, 0), Method: "POST", Status: 409}); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	before := st.acked
	st.mu.Unlock()
	st.waitStored(t, before+5, 10*time.Second)
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.leases) < 2 {
		t.Fatalf("the 409 did not end the lease: %d leases", len(st.leases))
	}
	first, second := st.leases[0], st.leases[1]
	var fe *FencedError
	if !errors.As(first.Err(), &fe) || fe.Reason[:len(reasonSeqGap)] != reasonSeqGap {
		t.Fatalf("first lease ended with %v, want the sequence-gap FencedError", first.Err())
	}
	start, err := strconv.Atoi(string(second.Start()))
	if err != nil || start < before || second.Epoch() != first.Epoch()+1 {
		t.Fatalf("re-claim at epoch %d starts at %q; want epoch %d from >= %d", second.Epoch(), second.Start(), first.Epoch()+1, before)
	}
}
