package topics

import (
	"context"
	"errors"
	"strconv"
	"testing"
)

// TestHookQueueCallsInOrderAndCloseWaitsForEveryCall: the calls come one
// at a time in the order they were queued, close returns once the last
// one returned, and a call queued after that is made at once, not lost.
func TestHookQueueCallsInOrderAndCloseWaitsForEveryCall(t *testing.T) {
	var got []string // the queue's goroutine alone appends, until close
	release := make(chan struct{})
	q := newHookQueue(func(_, uuid string, _ error) {
		if uuid == "0" {
			<-release // the first call blocks: the rest must wait for it
		}
		got = append(got, uuid)
	})
	for i := range 100 {
		q.add(hookCall{uuid: strconv.Itoa(i)})
	}
	close(release)
	if err := q.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 100 {
		t.Fatalf("%d calls made before close returned, want 100", len(got))
	}
	for i, uuid := range got {
		if uuid != strconv.Itoa(i) {
			t.Fatalf("call %d was %s", i, uuid)
		}
	}
	q.add(hookCall{uuid: "late"})
	if got[len(got)-1] != "late" {
		t.Fatal("a call after close was not made")
	}
}

// TestHookQueueCloseIsBoundedByItsContext: a hook that does not return
// holds close only until its context ends.
func TestHookQueueCloseIsBoundedByItsContext(t *testing.T) {
	stuck, entered := make(chan struct{}), make(chan struct{})
	q := newHookQueue(func(string, string, error) { close(entered); <-stuck })
	q.add(hookCall{})
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := q.close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("close = %v, want context.Canceled", err)
	}
	close(stuck)
	<-q.done // the goroutine ends once the hook returns
}
