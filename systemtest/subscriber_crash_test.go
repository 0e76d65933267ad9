package systemtest

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

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// Environment of the consumer process that TestCrashedGroupConsumerSkipsNothing
// starts and kills.
const (
	envCrashChild = "DS_TEST_CRASH_CHILD_BASE" // the BaseURL; set only in the child
	crashBacklog  = 5000
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
	// confirmed: the last message the last position the store confirmed
	// covers, in any run; a restart starts after it.
	maxSeen, confirmed := -1, -1
	totalAgain := 0
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
		// What this run may deliver again: what was acked after the last
		// confirmed position (with the default CommitInterval, those acked
		// while the last write was on the wire) and the message in hand.
		bound := maxSeen - confirmed + 1
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
		totalAgain += again
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
	t.Logf("with the defaults: %d delivered again over 5 kills (%.1f per kill)", totalAgain, float64(totalAgain)/5)
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
		case strings.HasPrefix(line, "STORED "):
			n, err := strconv.Atoi(strings.TrimPrefix(line, "STORED "))
			require.NoError(t, err)
			lastStored = max(lastStored, n)
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

// reportingStore prints, for every position the store confirmed, the
// number of the last message that position covers: the message at (offset,
// index) is covered by a position past it.
type reportingStore struct {
	ds.OffsetStore
	mu     sync.Mutex
	at     map[ds.Position]int // (offset, index) of each delivered message
	latest int                 // the last message delivered
}

func (r *reportingStore) delivered(msg *message.Message, n int) {
	index, _ := strconv.Atoi(msg.Metadata.Get(ds.MetadataIndex))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.at[ds.Position{Offset: msg.Metadata.Get(ds.MetadataOffset), Skip: index}] = n
	r.latest = n
}

// covered is the last message before pos.
func (r *reportingStore) covered(pos ds.Position) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if pos.Skip > 0 {
		return r.at[ds.Position{Offset: pos.Offset, Skip: pos.Skip - 1}]
	}
	if n, ok := r.at[pos]; ok {
		return n - 1
	}
	return r.latest // pos is the end of everything delivered so far
}

func (r *reportingStore) Store(ctx context.Context, group, topic string, pos ds.Position) error {
	n := r.covered(pos)
	err := r.OffsetStore.Store(ctx, group, topic, pos)
	if err == nil {
		fmt.Printf("STORED %d\n", n)
	}
	return err
}

// crashChild is the consumer process: it handles messages (a little work
// each), prints each one's number before acking it, and ends after the
// last. It runs with the default CommitInterval.
func crashChild(t *testing.T, base string) {
	offsets, err := ds.NewStreamOffsetStore(ds.StreamOffsetStoreConfig{BaseURL: base})
	require.NoError(t, err)
	store := &reportingStore{OffsetStore: offsets, at: map[ds.Position]int{}, latest: -1}
	sub, err := ds.NewSubscriber(ds.SubscriberConfig{BaseURL: base, Checkpoint: "g", OffsetStore: store}, nil)
	require.NoError(t, err)
	ch, err := sub.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	for msg := range ch {
		var p struct{ N int }
		require.NoError(t, json.Unmarshal(msg.Payload, &p))
		store.delivered(msg, p.N)
		time.Sleep(200 * time.Microsecond) // the handler's work
		fmt.Printf("ACK %d\n", p.N)
		msg.Ack()
		if p.N == crashBacklog-1 {
			break
		}
	}
	require.NoError(t, sub.Close())
}
