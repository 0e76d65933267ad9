package systemtest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// rollChildEnv makes TestRollingDeployChild a member process: its value
// is the base URL.
const rollChildEnv = "DS_ROLL_CHILD_BASE"

// TestRollingDeployChild is not a test on its own: TestRollingDeploy
// runs the test binary again with it, as one replica of a service. It
// does what a real program does: a Router with a 50 ms handler, closed on
// SIGTERM. Every setting of the Subscriber is the default but the group,
// its MemberID and the partition count. It prints "handled <uuid>
// <unix nanos>" as a handler starts on a message.
func TestRollingDeployChild(t *testing.T) {
	base := os.Getenv(rollChildEnv)
	if base == "" {
		t.Skip("a member process for TestRollingDeployDuplicatesNothing")
	}
	parts, _ := strconv.Atoi(os.Getenv(rollChildEnv + "_PARTITIONS"))
	logger := watermill.NewStdLoggerWithOut(os.Stderr, false, false)
	sub, err := ds.NewSubscriber(ds.SubscriberConfig{
		BaseURL: base, ConsumerGroup: "g", MemberID: os.Getenv(rollChildEnv + "_MEMBER"), Partitions: parts,
	}, logger)
	require.NoError(t, err)
	router, err := message.NewRouter(message.RouterConfig{}, logger)
	require.NoError(t, err)
	router.AddConsumerHandler("work", "jobs", sub, func(msg *message.Message) error {
		fmt.Printf("handled %s %d\n", msg.UUID, time.Now().UnixNano())
		time.Sleep(50 * time.Millisecond) // the handler's work
		return nil
	})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() {
		<-router.Running()
		fmt.Println("ready")
	}()
	require.NoError(t, router.Run(ctx))
}

// rollHandling is one handler start: which process, when (wall clock,
// shared by the processes of one machine).
type rollHandling struct {
	member string
	at     time.Time
}

// rollLedger is what the member processes printed.
type rollLedger struct {
	mu      sync.Mutex
	handled map[string][]rollHandling // message UUID -> handlings
	by      map[string]int            // member -> handlings
	grew    chan struct{}
}

// rollMember is one member process.
type rollMember struct {
	id     string
	cmd    *exec.Cmd
	ready  chan struct{}
	exited chan struct{} // closed once the process has exited and its output is read
	err    error         // the process's exit, once exited
	stderr *syncBuffer
}

// syncBuffer is a strings.Builder safe for the process's writes and the
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (l *rollLedger) start(t *testing.T, base string, parts int, id string) *rollMember {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRollingDeployChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), rollChildEnv+"="+base, rollChildEnv+"_MEMBER="+id, rollChildEnv+"_PARTITIONS="+strconv.Itoa(parts))
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	m := &rollMember{id: id, cmd: cmd, ready: make(chan struct{}), exited: make(chan struct{}), stderr: &syncBuffer{}}
	cmd.Stderr = m.stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-m.exited
		if t.Failed() || os.Getenv("DEBUGROLL") != "" {
			t.Logf("member %s's log:\n%s", id, m.stderr.String())
		}
	})
	go func() {
		defer close(m.exited)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 1 && f[0] == "ready":
				close(m.ready)
			case len(f) == 3 && f[0] == "handled":
				ns, _ := strconv.ParseInt(f[2], 10, 64)
				l.mu.Lock()
				l.handled[f[1]] = append(l.handled[f[1]], rollHandling{member: id, at: time.Unix(0, ns)})
				l.by[id]++
				l.mu.Unlock()
				select {
				case l.grew <- struct{}{}:
				default:
				}
			}
		}
		m.err = cmd.Wait()
	}()
	return m
}

// waitAll waits until every message in uuids was handled, or fails at
// deadline.
func (l *rollLedger) waitAll(t *testing.T, uuids []string, deadline <-chan time.Time, what string) {
	t.Helper()
	for {
		l.mu.Lock()
		missing := 0
		for _, id := range uuids {
			if len(l.handled[id]) == 0 {
				missing++
			}
		}
		l.mu.Unlock()
		if missing == 0 {
			return
		}
		select {
		case <-l.grew:
		case <-deadline:
			t.Fatalf("%s: %d of %d messages not handled (a stall or a skip)", what, missing, len(uuids))
		}
	}
}

// waitHandledBy waits until member handled n messages, or fails at
// deadline.
func (l *rollLedger) waitHandledBy(t *testing.T, member string, n int, deadline <-chan time.Time) {
	t.Helper()
	for {
		l.mu.Lock()
		got := l.by[member]
		l.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-l.grew:
		case <-deadline:
			t.Fatalf("member %s handled %d messages, not %d", member, got, n)
		}
	}
}

// rollSent is one published message.
type rollSent struct {
	uuid, key string
	seq       int
	at        time.Time
}

// TestRollingDeployDuplicatesNothing: three member processes of one
// sharing group (six partitions, a 50 ms handler, every timing setting at
// its default) under a steady load of keyed messages are replaced one at
// a time, as a rolling deploy does: SIGTERM (the program closes its
// Router), and a new process with a new MemberID started at once. Every
// message is handled exactly once (0 duplicates, 0 skipped), in order per
// key, and delivery catches up after each roll: a member that left
// without handing over would hold its partitions for SessionTimeout (10 s).
func TestRollingDeployDuplicatesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six member processes")
	}
	base := dstest.StreamURL(t)
	const parts, rolls = 6, 3
	pub := partitionedPublisher(t, base, parts)
	l := &rollLedger{handled: map[string][]rollHandling{}, by: map[string]int{}, grew: make(chan struct{}, 1)}
	var members []*rollMember
	for i := range 3 {
		members = append(members, l.start(t, base, parts, "m"+strconv.Itoa(i+1)))
	}
	for _, m := range members {
		<-m.ready
	}

	// The load: a message per 20 ms tick over 24 keys, each Publish
	// waited for (at most 50 a second; about 27 measured under -race);
	// the group can handle 120 a second, 20 per partition.
	var (
		sentMu sync.Mutex
		sent   []rollSent
	)
	published := func() []string {
		sentMu.Lock()
		defer sentMu.Unlock()
		ids := make([]string, len(sent))
		for i, s := range sent {
			ids[i] = s.uuid
		}
		return ids
	}
	stopLoad, loadDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(loadDone)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		seq := map[string]int{}
		for i := 0; ; i++ {
			select {
			case <-stopLoad:
				return
			case <-tick.C:
			}
			key := "k" + strconv.Itoa(i%24)
			seq[key]++
			msg := keyed(key, seq[key])
			at := time.Now()
			if err := pub.Publish("jobs", msg); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			sentMu.Lock()
			sent = append(sent, rollSent{uuid: msg.UUID, key: key, seq: seq[key], at: at})
			sentMu.Unlock()
		}
	}()
	defer func() {
		select {
		case <-stopLoad:
		default:
			close(stopLoad)
		}
		<-loadDone
	}()

	overall := time.After(3 * time.Minute)
	// Before the first roll every member handles: the partitions are
	// spread over the three.
	for _, m := range members {
		l.waitHandledBy(t, m.id, 1, overall)
	}
	l.waitAll(t, published(), overall, "before the first roll")
	var stopTimes []time.Duration
	for i := range rolls {
		old := members[i]
		// A member at work, its handler most likely holding a message.
		l.waitHandledBy(t, old.id, 10, overall)
		signalled := time.Now()
		require.NoError(t, old.cmd.Process.Signal(syscall.SIGTERM))
		next := l.start(t, base, parts, "m"+strconv.Itoa(rolls+i+1))
		members = append(members, next)
		select {
		case <-old.exited:
		case <-overall:
			t.Fatalf("member %s did not exit after SIGTERM", old.id)
		}
		stopTimes = append(stopTimes, time.Since(signalled).Round(time.Millisecond))
		require.NoError(t, old.err, "member %s after SIGTERM:\n%s", old.id, old.stderr.String())
		<-next.ready
		// Delivery goes on: everything published until now is handled,
		// and the newcomer got partitions and handles.
		l.waitAll(t, published(), overall, fmt.Sprintf("after roll %d", i+1))
		l.waitHandledBy(t, next.id, 1, overall)
	}
	close(stopLoad)
	<-loadDone
	all := published()
	l.waitAll(t, all, overall, "at the end")
	for _, m := range members[rolls:] {
		require.NoError(t, m.cmd.Process.Signal(syscall.SIGTERM))
		<-m.exited
		require.NoError(t, m.err, "member %s after SIGTERM", m.id)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	sentMu.Lock()
	defer sentMu.Unlock()
	dups := 0
	var worst time.Duration
	byKey := map[string][]rollSent{}
	for _, s := range sent {
		hs := l.handled[s.uuid]
		dups += len(hs) - 1
		if len(hs) > 1 {
			t.Errorf("message %s (key %s seq %d) handled %d times: %v", s.uuid, s.key, s.seq, len(hs), hs)
		}
		worst = max(worst, hs[0].at.Sub(s.at))
		byKey[s.key] = append(byKey[s.key], s)
	}
	inversions := 0
	for key, msgs := range byKey {
		// Handled in the order published: by the handlers' start times.
		byStart := slices.Clone(msgs)
		slices.SortStableFunc(byStart, func(a, b rollSent) int {
			return l.handled[a.uuid][0].at.Compare(l.handled[b.uuid][0].at)
		})
		for i := 1; i < len(byStart); i++ {
			if byStart[i].seq < byStart[i-1].seq {
				inversions++
				t.Errorf("key %s: seq %d handled before seq %d", key, byStart[i-1].seq, byStart[i].seq)
			}
		}
	}
	t.Logf("%d messages, %d rolls: %d duplicates (%.2f per SIGTERM); SIGTERM to exit took %v (-race adds a 1 s sleep at exit); per member %v; worst publish-to-handler %v",
		len(sent), rolls, dups, float64(dups)/rolls, stopTimes, l.by, worst.Round(time.Millisecond))
	assert.Zero(t, dups, "duplicates in a rolling deploy")
	assert.Zero(t, inversions, "per-key order inversions")
	// A member that left without handing over holds its partitions for
	// SessionTimeout (10 s): no message waits that long.
	assert.Less(t, worst, 8*time.Second, "a message waited for a session timeout: a stop that did not hand over")
}
