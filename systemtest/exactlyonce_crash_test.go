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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/partition"
)

// eoKeys is how many keys the inputs of the crash tests spread over.
const eoKeys = 200

// TestExactlyOnceRouterThroughKillsPausesAndStops: three member processes
// run a Router handler with the ExactlyOnce middleware from "in" to "out"
// (8 partitions each) while they are SIGKILLed, SIGSTOPped past their
// session timeout and SIGTERMed, and restarted. Every input has exactly
// one output, per-key order holds in the outputs, and in every output
// stream the lease epochs never go down (no former owner wrote after a
// newer one).
func TestExactlyOnceRouterThroughKillsPausesAndStops(t *testing.T) {
	runEOCrash(t, "router", eoRouterInputs)
}

// TestExactlyOnceCQRSThroughKillsPausesAndStops: the same with a CQRS
// command handler that publishes one event per command through an
// EventBus: one event per command.
func TestExactlyOnceCQRSThroughKillsPausesAndStops(t *testing.T) {
	runEOCrash(t, "cqrs", eoCQRSInputs)
}

// eoRecord is what an output says about its input.
type eoRecord struct {
	seq    int
	key    string
	member string
	epoch  int64
}

func runEOCrash(t *testing.T, mode string, inputs int) {
	if n, err := strconv.Atoi(os.Getenv("DS_EO_INPUTS")); err == nil {
		inputs = n
	}
	base := dstest.StreamURL(t)
	start := time.Now()
	children := make([]*eoChild, 3)
	for i := range children {
		children[i] = startEOChild(t, base, mode, fmt.Sprintf("m%d", i))
	}
	seen := followEOOutputs(t, base, mode)
	sent := make(chan error, 1)
	go func() { sent <- sendEOInputs(base, mode, inputs) }()
	faults := eoFaults(t, children, seen, inputs)
	require.NoError(t, <-sent)
	waitEOOutputs(t, seen, inputs)
	for _, c := range children {
		c.term(t)
	}
	got := readEOOutputs(t, base, mode)
	checkEOOutputs(t, got, inputs)
	t.Logf("%s: %d inputs, faults %v, %v in all", mode, inputs, faults, time.Since(start).Round(time.Millisecond))
}

// sendEOInputs publishes the inputs while the faults happen: a batch
// every eoFeedEvery over about eoFeedFor, so that the faults fall on a
// flowing topic however fast the server is.
func sendEOInputs(base, mode string, n int) error {
	pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base, Partitions: eoPartitions}, nil)
	if err != nil {
		return err
	}
	defer pub.Close()
	batch := max(n/int(eoFeedFor/eoFeedEvery), 1)
	tick := time.NewTicker(eoFeedEvery)
	defer tick.Stop()
	for i := 0; i < n; i += batch {
		var msgs []*message.Message
		for j := i; j < min(i+batch, n); j++ {
			msg, err := eoInput(mode, j)
			if err != nil {
				return err
			}
			msgs = append(msgs, msg)
		}
		if err := pub.Publish("in", msgs...); err != nil {
			return err
		}
		<-tick.C
	}
	return nil
}

// The feed of the crash tests' inputs.
const (
	eoFeedFor   = 8 * time.Second
	eoFeedEvery = 100 * time.Millisecond
)

// eoInput is input i: a keyed message, or a command as a CommandBus
// sends it (marshaled, keyed by ds.KeyCommands).
func eoInput(mode string, i int) (*message.Message, error) {
	if mode != "cqrs" {
		return keyed(eoKey(i), i+1), nil
	}
	cmd := &eoCommand{Key: eoKey(i), Seq: i + 1}
	msg, err := cqrs.JSONMarshaler{}.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	return msg, ds.KeyCommands(cqrs.CommandBusOnSendParams{Command: cmd, Message: msg})
}

func eoKey(i int) string { return "k" + strconv.Itoa(i%eoKeys) }

// eoRecordOf decodes an output.
func eoRecordOf(t *testing.T, mode string, msg *message.Message) eoRecord {
	if mode == "cqrs" {
		var e eoEvent
		require.NoError(t, json.Unmarshal(msg.Payload, &e), "%s", msg.Payload)
		return eoRecord{seq: e.Seq, key: e.Key, member: e.Member, epoch: e.Epoch}
	}
	seq, _ := strconv.Atoi(msg.Metadata.Get("seq"))
	epoch, _ := strconv.ParseInt(msg.Metadata.Get("epoch"), 10, 64)
	return eoRecord{seq: seq, key: msg.Metadata.Get(partitionKey), member: msg.Metadata.Get("member"), epoch: epoch}
}

// eoSeen is what the follower saw: the inputs with an output so far.
type eoSeen struct {
	mu   sync.Mutex
	seqs map[int]bool
	grew chan struct{}
}

func (s *eoSeen) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seqs)
}

// followEOOutputs reads the outputs live, in a group of its own.
func followEOOutputs(t *testing.T, base, mode string) *eoSeen {
	sub, err := ds.NewSubscriber(ds.SubscriberConfig{BaseURL: base, ConsumerGroup: "follow", Partitions: eoPartitions}, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, sub.Close())
	})
	seen := &eoSeen{seqs: map[int]bool{}, grew: make(chan struct{}, 1)}
	msgs, err := sub.Subscribe(ctx, "out")
	require.NoError(t, err)
	go func() {
		for msg := range msgs {
			r := eoRecordOf(t, mode, msg)
			msg.Ack()
			seen.mu.Lock()
			seen.seqs[r.seq] = true
			seen.mu.Unlock()
			select {
			case seen.grew <- struct{}{}:
			default:
			}
		}
	}()
	return seen
}

// waitEOOutputs waits until an output of every input was seen.
func waitEOOutputs(t *testing.T, seen *eoSeen, n int) {
	deadline := time.After(3 * time.Minute)
	for seen.count() < n {
		select {
		case <-seen.grew:
		case <-deadline:
			t.Fatalf("outputs of %d of %d inputs written", seen.count(), n)
		}
	}
}

// readEOOutputs reads every output stream once the members are gone.
func readEOOutputs(t *testing.T, base, mode string) [][]eoRecord {
	out := make([][]eoRecord, eoPartitions)
	for i := range eoPartitions {
		for _, raw := range readJSONStream(t, base+"/"+partition.StreamName("out", i, eoPartitions)) {
			msg, err := ds.JSONMarshaler{}.Unmarshal("out", raw)
			require.NoError(t, err)
			out[i] = append(out[i], eoRecordOf(t, mode, msg))
		}
	}
	return out
}

// checkEOOutputs: one output per input, none missing, per-key order, and
// epochs that never go down within an output stream.
func checkEOOutputs(t *testing.T, streams [][]eoRecord, n int) {
	count := map[int]int{}
	dup, order, epochDown := 0, 0, 0
	for p, recs := range streams {
		last := map[string]int{}
		var epoch int64 = -1
		for _, r := range recs {
			count[r.seq]++
			if count[r.seq] > 1 {
				dup++
			}
			if r.seq <= last[r.key] {
				order++
			}
			last[r.key] = max(last[r.key], r.seq)
			if r.epoch < epoch {
				epochDown++
				t.Errorf("partition %d: output of input %d by %s at epoch %d after one at epoch %d", p, r.seq, r.member, r.epoch, epoch)
			}
			epoch = max(epoch, r.epoch)
		}
	}
	missing := 0
	for s := 1; s <= n; s++ {
		if count[s] == 0 {
			missing++
		}
	}
	t.Logf("outputs: %d inputs, %d duplicates, %d missing, %d order violations, %d epoch regressions", n, dup, missing, order, epochDown)
	assert.Zero(t, dup, "inputs with more than one output")
	assert.Zero(t, missing, "inputs without output")
	assert.Zero(t, order, "per-key order violations")
	assert.Zero(t, epochDown, "outputs written by a former owner after a newer one")
}

// eoFaults SIGKILLs, SIGSTOPs (past the session timeout) and SIGTERMs the
// members at random while the outputs grow, restarting the killed and
// stopped ones, until most inputs are done; at least one of each.
func eoFaults(t *testing.T, children []*eoChild, seen *eoSeen, n int) map[string]int {
	faults := map[string]int{}
	kinds := []string{"stop", "kill", "term"}
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 21))
	// One of each first; then more while the first 90% of the inputs flow.
	for round := 0; round < 3 || (round < 12 && seen.count() < n*9/10); round++ {
		kind := kinds[round%3]
		if round >= 3 {
			kind = kinds[rnd.IntN(3)]
		}
		if seen.count() >= n {
			t.Errorf("all inputs were done before fault %d (%s): the test needs more inputs", round, kind)
		}
		c := children[rnd.IntN(len(children))]
		// Fault timing, not synchronisation: a random moment of the run.
		time.Sleep(time.Duration(200+rnd.IntN(600)) * time.Millisecond)
		switch kind {
		case "kill":
			c.signal(t, syscall.SIGKILL)
			c.restart(t)
		case "stop":
			c.signal(t, syscall.SIGSTOP)
			time.Sleep(eoSession + time.Second) // past the session: the others take over
			c.signal(t, syscall.SIGCONT)
		case "term":
			c.term(t)
			c.restart(t)
		}
		faults[kind]++
	}
	return faults
}

// eoChild is one member process.
type eoChild struct {
	base, mode, id string
	cmd            *exec.Cmd
	exited         chan struct{}
}

func startEOChild(t *testing.T, base, mode, id string) *eoChild {
	c := &eoChild{base: base, mode: mode, id: id}
	c.start(t)
	return c
}

func (c *eoChild) start(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestEOChildMember$")
	cmd.Env = append(os.Environ(), eoChildEnv+"="+c.base, eoChildEnv+"_ID="+c.id, eoChildEnv+"_MODE="+c.mode)
	if dir := os.Getenv("DS_EO_LOGS"); dir != "" {
		f, err := os.OpenFile(dir+"/"+c.id+".log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		require.NoError(t, err)
		defer f.Close()
		cmd.Stderr = f
	}
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	c.cmd, c.exited = cmd, make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
	})
	ready := make(chan struct{})
	go func() {
		defer close(c.exited)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "ready" {
				close(ready)
			}
		}
		_ = cmd.Wait()
	}()
	select {
	case <-ready:
	case <-c.exited:
		t.Fatalf("member %s exited before it was ready", c.id)
	}
}

func (c *eoChild) signal(t *testing.T, sig syscall.Signal) {
	require.NoError(t, c.cmd.Process.Signal(sig))
	if sig == syscall.SIGKILL {
		<-c.exited
	}
}

func (c *eoChild) restart(t *testing.T) { c.start(t) }

// term stops the member gracefully and waits for its exit.
func (c *eoChild) term(t *testing.T) {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		t.Errorf("member %s did not exit within 30s of SIGTERM", c.id)
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}
