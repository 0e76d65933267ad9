package systemtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
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
	partitions, _ := strconv.Atoi(os.Getenv(groupChildEnv + "_PARTITIONS"))
	// Its log goes to stdout too: the pause test waits for the line
	// that says the member lost its stream.
	sub, err := ds.NewSubscriber(ds.SubscriberConfig{
		// The default CommitInterval: one position write in flight per
		// stream, the next carrying the latest ack.
		BaseURL: base, ConsumerGroup: "g",
		MemberID: "z-child", Partitions: partitions,
		SessionTimeout: 2 * time.Second, HeartbeatInterval: 200 * time.Millisecond,
	}, watermill.NewStdLoggerWithOut(os.Stdout, false, false))
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

	c := startGroupChild(t, base, 4)
	cmd, readDone, progress := c.cmd, c.done, c.progress
	mu, child := &c.mu, c.handled
	<-c.ready
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
	// With the default CommitInterval what comes again is, per stream the
	// child owned, the messages acked while its last position write was on
	// the wire and the one in its hands: a few, never the drain since the
	// last interval (before the default changed: 82-307 per kill). The
	// bound only catches positions that are not stored as they move.
	t.Logf("child handled %d before SIGKILL; survivors %v; handled again: %d", byChild, h.by, again)
	assert.LessOrEqual(t, again, 100, "redelivered more than one write's round trip of acks per stream")
}

// groupChild is a member process and what it printed.
type groupChild struct {
	cmd      *exec.Cmd
	ready    chan struct{}
	progress chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	handled  map[string]int
	lost     chan struct{} // closed when it logs the loss of its stream
	// afterResume counts "handled" lines once resumed is set.
	resumed     bool
	afterResume int
}

func startGroupChild(t *testing.T, base string, partitions int) *groupChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestGroupChildMember$")
	cmd.Env = append(os.Environ(), groupChildEnv+"="+base, groupChildEnv+"_PARTITIONS="+strconv.Itoa(partitions))
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
	})
	c := &groupChild{cmd: cmd, ready: make(chan struct{}), progress: make(chan struct{}, 1), done: make(chan struct{}),
		handled: map[string]int{}, lost: make(chan struct{})}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(out)
		lost := false
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "ready":
				close(c.ready)
			case strings.HasPrefix(line, "handled "):
				c.mu.Lock()
				c.handled[strings.TrimPrefix(line, "handled ")]++
				if c.resumed {
					c.afterResume++
				}
				c.mu.Unlock()
				select {
				case c.progress <- struct{}{}:
				default:
				}
			case !lost && (strings.Contains(line, "session expired") || strings.Contains(line, "lease fenced")):
				lost = true
				close(c.lost)
			}
		}
	}()
	return c
}

func (c *groupChild) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.handled)
}

func TestGroupMemberPausedPastItsSessionIsFenced(t *testing.T) {
	base := dstest.StreamURL(t)
	const total = 2000
	pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base}, nil)
	require.NoError(t, err)
	defer pub.Close()
	for i := range total {
		require.NoError(t, pub.Publish("jobs", keyed("k", i+1)))
	}
	c := startGroupChild(t, base, 0)
	<-c.ready
	for c.count() < 100 {
		<-c.progress
	}
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGSTOP))
	paused := time.Now()
	// A standby joins while the child is frozen, so the child never saw
	// it and handed nothing over. "standby" sorts before "z-child": the
	// stream is the standby's by assignment too, so the child has no
	// claim to it after it comes back.
	h := newHandled()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := groupSubscriber(t, base, "g", "standby", 0).Subscribe(ctx, "jobs")
	require.NoError(t, err)
	done := h.consume(t, "standby", msgs)
	h.waitDistinct(t, 1, 30*time.Second)
	took := time.Since(paused)
	t.Logf("standby took over %v after the SIGSTOP", took)
	assert.GreaterOrEqual(t, took, 2*time.Second, "taken over before the frozen member's session ran out")
	// The child's output before the pause has long been read: the
	// takeover took a session timeout.
	c.mu.Lock()
	c.resumed = true
	c.mu.Unlock()
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGCONT))
	select {
	case <-c.lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the resumed child never logged the loss of its stream")
	}
	union := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		h.mu.Lock()
		defer h.mu.Unlock()
		n := len(h.times)
		for id := range c.handled {
			if h.times[id] == 0 {
				n++
			}
		}
		return n
	}
	deadline := time.After(time.Minute)
	for union() < total {
		select {
		case <-h.grew:
		case <-deadline:
			t.Fatalf("%d of %d messages handled: the rest were skipped", union(), total)
		}
	}
	cancel()
	done.Wait()

	c.mu.Lock()
	defer c.mu.Unlock()
	// At most the message it held when frozen (received, not yet
	// printed) is handled after the pause; nothing is read after.
	assert.LessOrEqual(t, c.afterResume, 1, "the resumed child kept delivering")
	// Nothing of the child's old epoch after the standby's claim (once
	// the standby left at the end, the child may claim anew, at a newer
	// epoch).
	var root []struct {
		Owner string `json:"owner"`
		Epoch int64  `json:"epoch"`
	}
	require.NoError(t, json.Unmarshal(readRaw(t, base+"/__groups/g/jobs/streams/jobs"), &root))
	standbyEpoch := int64(-1)
	for _, r := range root {
		if r.Owner == "standby" && standbyEpoch < 0 {
			standbyEpoch = r.Epoch
		}
		if standbyEpoch >= 0 && r.Owner == "z-child" {
			assert.Greater(t, r.Epoch, standbyEpoch, "the paused child wrote at its old epoch after the standby's claim: %+v", root)
		}
	}
	require.GreaterOrEqual(t, standbyEpoch, int64(1), "no standby claim: %+v", root)
}
