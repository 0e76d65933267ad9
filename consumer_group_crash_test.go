package durablestreams_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// groupChildEnv makes TestGroupChildMember a member process: its value is
// the base URL.
const groupChildEnv = "DS_GROUP_CHILD_BASE"

// TestGroupChildMember is not a test on its own: the crash test runs the
// test binary again with it, as a member it can SIGKILL. It prints
// "handled <uuid>" for each message before acking it.
func TestGroupChildMember(t *testing.T) {
	base := os.Getenv(groupChildEnv)
	if base == "" {
		t.Skip("a member process for TestGroupMemberKilledWhileDraining")
	}
	sub, err := ds.NewGroupSubscriber(ds.GroupSubscriberConfig{
		Subscriber: ds.SubscriberConfig{BaseURL: base, ConsumerGroup: "g"}, // a position stored per ack
		MemberID:   "child", Partitions: 4,
		SessionTimeout: 2 * time.Second, HeartbeatInterval: 200 * time.Millisecond,
	}, nil)
	require.NoError(t, err)
	msgs, err := sub.Subscribe(context.Background(), "jobs")
	require.NoError(t, err)
	fmt.Println("ready")
	for msg := range msgs {
		fmt.Println("handled", msg.UUID)
		time.Sleep(time.Millisecond) // the handler's work
		msg.Ack()
	}
}

func TestGroupMemberKilledWhileDraining(t *testing.T) {
	base := dstest.StreamURL(t)
	const total = 3000
	pub := partitionedPublisher(t, base, 4)
	var sent []string
	for i := range total {
		msg := keyed(fmt.Sprintf("k%d", i%40), i)
		sent = append(sent, msg.UUID)
		require.NoError(t, pub.Publish("jobs", msg))
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestGroupChildMember$")
	cmd.Env = append(os.Environ(), groupChildEnv+"="+base)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	var mu sync.Mutex
	child := map[string]int{}
	ready := make(chan struct{})
	progress := make(chan struct{}, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if line == "ready" {
				close(ready)
			}
			if id, ok := strings.CutPrefix(line, "handled "); ok {
				mu.Lock()
				child[id]++
				mu.Unlock()
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		}
	}()
	<-ready
	// The child drains alone for a while, then two members join and take
	// some of its partitions; it is killed while it still drains.
	h := newHandled()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var consumers []*sync.WaitGroup
	for _, id := range []string{"a", "b"} {
		msgs, err := groupSubscriber(t, base, "g", id, 4).Subscribe(ctx, "jobs")
		require.NoError(t, err)
		consumers = append(consumers, h.consume(t, id, msgs))
	}
	for {
		<-progress
		mu.Lock()
		n := len(child)
		mu.Unlock()
		if n >= 300 {
			break
		}
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	<-readDone
	_ = cmd.Wait()

	mu.Lock()
	byChild := len(child)
	mu.Unlock()
	// Whatever the child did not handle, the others must.
	deadline := time.After(time.Minute)
	for {
		h.mu.Lock()
		missing := 0
		for _, id := range sent {
			if child[id] == 0 && h.times[id] == 0 {
				missing++
			}
		}
		h.mu.Unlock()
		if missing == 0 {
			break
		}
		select {
		case <-h.grew:
		case <-deadline:
			t.Fatalf("%d messages skipped after the SIGKILL (child handled %d)", missing, byChild)
		}
	}
	cancel()
	for _, c := range consumers {
		c.Wait()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	again := 0
	for id := range child {
		if h.times[id] > 0 {
			again++
		}
	}
	for id, n := range h.times {
		assert.Equal(t, 1, n, "message %s handled %d times by the survivors", id, n)
	}
	// Positions are stored per ack: only a message in the child's hands
	// (printed, not yet stored) comes again, at most one per partition.
	t.Logf("child handled %d before SIGKILL; survivors %v; handled again: %d", byChild, h.by, again)
	assert.LessOrEqual(t, again, 4, "redelivered more than the messages in the killed member's hands")
}
