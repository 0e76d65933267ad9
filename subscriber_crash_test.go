package durablestreams_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// Environment of the consumer process that TestCrashedGroupConsumerSkipsNothing
// starts and kills.
const (
	envCrashChild = "DS_TEST_CRASH_CHILD_BASE" // the BaseURL; set only in the child
	crashBacklog  = 5000
	crashInterval = 200 * time.Millisecond
)

// TestCrashedGroupConsumerSkipsNothing: a consumer process in a group is
// SIGKILLed at random points while it drains a backlog of 5,000 messages,
// and restarted, five times; the sixth run drains to the end. Nothing is
// skipped, and what a restart delivers again is within the documented
// bound: at most what was acked after the last position the store
// confirmed (which CommitInterval bounds), in this run or an earlier one,
// plus the message in flight.
func TestCrashedGroupConsumerSkipsNothing(t *testing.T) {
	if base := os.Getenv(envCrashChild); base != "" {
		crashChild(t, base)
		return
	}
	if testing.Short() {
		t.Skip("starts six consumer processes")
	}
	base := dstest.StreamURL(t)
	httpDo(t, "PUT", base+"/t", "application/json", "")
	publishBacklog(t, base+"/t", crashBacklog, 250)

	handled := make([]int, crashBacklog) // times each message was handled
	// confirmed: the last message acked before the last position the
	// store confirmed, in any run; a restart starts after it, or at it
	// (its ack may have been printed just before the store began).
	maxSeen, confirmed := -1, -1
	for run := 0; ; run++ {
		killAfter := -1
		if run < 5 {
			// At most 800 acks per killed run: the five of them cannot
			// drain the backlog (5 × 800 < 5,000), so the last run always
			// has messages left to drain to the end; when they could, a
			// last run with nothing left waited for messages that never
			// came (seen: 1,499 + 1,318 + 1,122 + 1,030 + 368 acks).
			killAfter = 1 + rand.IntN(800)
		}
		bound := maxSeen - confirmed + 1 // what this run may deliver again
		acks, lastStored := runCrashChild(t, base, killAfter)
		if len(acks) > 0 {
			require.LessOrEqual(t, acks[0], maxSeen+1, "run %d starts after a gap: message %d skipped", run, maxSeen+1)
		}
		again := 0
		for i, n := range acks {
			if i > 0 {
				require.Equal(t, acks[i-1]+1, n, "run %d: out of order or skipped", run)
			}
			if handled[n] > 0 {
				again++
			}
			handled[n]++
			maxSeen = max(maxSeen, n)
		}
		t.Logf("run %d: %d acks, %d delivered again (bound %d); killed: %v", run, len(acks), again, max(bound, 0), killAfter >= 0)
		if run > 0 {
			require.LessOrEqual(t, again, bound, "run %d delivers again more than was acked after the last stored position", run)
		}
		if lastStored >= 0 {
			confirmed = lastStored
		}
		if killAfter < 0 {
			break
		}
	}
	for i, n := range handled {
		require.Positive(t, n, "message %d was never delivered", i)
	}
}

// runCrashChild runs one consumer process and kills it after killAfter
// acks (never with -1: it drains to the end). It returns the message
// numbers the process handled, in order, and the last one acked before
// the last position the store confirmed (-1: none confirmed).
func runCrashChild(t *testing.T, base string, killAfter int) (acks []int, lastStored int) {
	lastStored = -1
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashedGroupConsumerSkipsNothing$", "-test.count=1")
	cmd.Env = append(os.Environ(), envCrashChild+"="+base)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	var once sync.Once
	kill := func() { once.Do(func() { _ = cmd.Process.Kill() }) }
	defer kill()
	// A consumer that stops making progress is a failure to see, not a
	// hang: SIGQUIT makes it print its goroutines, then it is killed.
	var stuck atomic.Bool
	watchdog := time.AfterFunc(2*time.Minute, func() {
		stuck.Store(true)
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		time.AfterFunc(5*time.Second, kill)
	})
	defer watchdog.Stop()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "ACK "):
			n, err := strconv.Atoi(strings.TrimPrefix(line, "ACK "))
			require.NoError(t, err)
			acks = append(acks, n)
			if len(acks) == killAfter {
				kill()
			}
		case strings.HasPrefix(line, "STORED") && len(acks) > 0:
			lastStored = acks[len(acks)-1]
		}
	}
	err = cmd.Wait()
	require.False(t, stuck.Load(), "the consumer process made no progress for 2 minutes after %d acks:\n%s", len(acks), stderr.String())
	if killAfter < 0 || len(acks) < killAfter {
		require.NoError(t, err, "consumer process: %s", stderr.String())
		require.Equal(t, crashBacklog-1, acks[len(acks)-1], "the last run drains to the end")
	}
	return acks, lastStored
}

// reportingStore prints every position the store confirmed.
type reportingStore struct{ ds.OffsetStore }

func (r reportingStore) Store(ctx context.Context, group, topic string, pos ds.Position) error {
	err := r.OffsetStore.Store(ctx, group, topic, pos)
	if err == nil {
		fmt.Printf("STORED %s %d\n", pos.Offset, pos.Skip)
	}
	return err
}

// crashChild is the consumer process: it handles messages (a little work
// each), prints each one's number before acking it, and ends after the
// last.
func crashChild(t *testing.T, base string) {
	store, err := ds.NewStreamOffsetStore(ds.StreamOffsetStoreConfig{BaseURL: base})
	require.NoError(t, err)
	sub, err := ds.NewSubscriber(ds.SubscriberConfig{
		BaseURL: base, ConsumerGroup: "g", OffsetStore: reportingStore{store}, CommitInterval: crashInterval,
	}, nil)
	require.NoError(t, err)
	ch, err := sub.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	for msg := range ch {
		var p struct{ N int }
		require.NoError(t, json.Unmarshal(msg.Payload, &p))
		time.Sleep(200 * time.Microsecond) // the handler's work
		fmt.Printf("ACK %d\n", p.N)
		msg.Ack()
		if p.N == crashBacklog-1 {
			break
		}
	}
	require.NoError(t, sub.Close())
}
