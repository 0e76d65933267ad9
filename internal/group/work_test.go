package group

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/partition"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
)

// A group of members doing real work: each reads the streams it leases
// from their start, handles every message, stores the offset after each
// read, and releases with it when its lease is revoked. This is the shape
// the Subscriber takes with a group (see the package doc).

type job struct {
	Key string `json:"key"`
	Seq int    `json:"seq"`
}

// ledger records every handling.
type ledger struct {
	mu      sync.Mutex
	by      map[string]int // member -> handled
	times   map[job]int
	lastSeq map[string]int // key -> last seq handled
	order   int            // per-key order violations
	total   int
	grew    chan struct{}
}

func newLedger() *ledger {
	return &ledger{by: map[string]int{}, times: map[job]int{}, lastSeq: map[string]int{}, grew: make(chan struct{}, 1)}
}

func (g *ledger) handle(member string, j job) {
	g.mu.Lock()
	g.by[member]++
	g.times[j]++
	if j.Seq <= g.lastSeq[j.Key] && g.times[j] == 1 {
		g.order++
	}
	g.lastSeq[j.Key] = max(g.lastSeq[j.Key], j.Seq)
	g.total++
	g.mu.Unlock()
	select {
	case g.grew <- struct{}{}:
	default:
	}
}

func (g *ledger) distinct() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.times)
}

func (g *ledger) waitDistinct(t *testing.T, n int, within time.Duration) {
	t.Helper()
	timeout := time.After(within)
	for g.distinct() < n {
		select {
		case <-g.grew:
		case <-timeout:
			t.Fatalf("handled %d distinct messages of %d within %v", g.distinct(), n, within)
		}
	}
}

// worker consumes every lease of m until m leaves.
func worker(t *testing.T, m *Member, streamURL func(string) string, g *ledger, b *board) {
	workerAs(t, m, m.ID(), streamURL, g, b)
}

// workerAs is worker with the handlings and holdings noted as label's (two
// instances of one member ID).
func workerAs(t *testing.T, m *Member, label string, streamURL func(string) string, g *ledger, b *board) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for l := range m.Assignments() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				work(t, m, label, l, streamURL(l.Stream()), g, b)
			}()
		}
	}()
	t.Cleanup(func() {
		leave(t, m)
		wg.Wait()
	})
}

func work(t *testing.T, m *Member, label string, l *Lease, url string, g *ledger, b *board) {
	if b != nil {
		b.take(l.Stream(), label)
		defer b.drop(l.Stream(), label)
	}
	offset := reader.OffsetBeginning
	if l.Start() != nil {
		if err := json.Unmarshal(l.Start(), &offset); err != nil {
			t.Errorf("start %s: %v", l.Start(), err)
			return
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := context.AfterFunc(ctxOf(l.Done()), cancel)
	defer stop()
	r, err := reader.New(reader.Config{URL: url, Offset: offset, Client: m.cfg.Client, RetryPolicy: m.cfg.RetryPolicy})
	if err != nil {
		t.Error(err)
		return
	}
	defer r.Close()
	var last json.RawMessage
	for {
		chunk, err := r.Next(ctx)
		if err != nil {
			break
		}
		if !l.Valid() {
			break // in hand, not handled: the next owner reads it
		}
		data, err := chunk.ReadData(reader.DefaultMaxBodyBytes)
		if err != nil {
			t.Errorf("chunk: %v", err)
			return
		}
		var jobs []job
		if err := json.Unmarshal(data, &jobs); err != nil {
			t.Errorf("chunk: %v", err)
			return
		}
		for _, j := range jobs {
			g.handle(label, j)
		}
		last, _ = json.Marshal(chunk.NextOffset)
		if err := l.Store(context.Background(), last); err != nil {
			break
		}
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	_ = l.Release(rctx, last)
}

// ctxOf is a context done when ch is closed.
func ctxOf(ch <-chan struct{}) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-ch
		cancel()
	}()
	return ctx
}

// publish appends n jobs over the partitions of topic, keyed by 100 keys,
// in batches of 100 per request.
func publish(t *testing.T, c *protocol.Client, base, topic string, parts, n int, pause time.Duration) {
	t.Helper()
	batches := make(map[int][]job)
	seq := map[string]int{}
	flush := func(p int) {
		body, _ := json.Marshal(batches[p])
		url := base + "/" + partition.StreamName(topic, p, parts)
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil || resp.StatusCode/100 != 2 {
			t.Fatalf("publish to %s: %v %v", url, err, resp)
		}
		resp.Body.Close()
		batches[p] = nil
		if pause > 0 {
			time.Sleep(pause) // a publisher's pace, not a synchronisation
		}
	}
	for i := range n {
		key := "k" + strconv.Itoa(i%100)
		seq[key]++
		p := partition.Of(key, parts)
		batches[p] = append(batches[p], job{Key: key, Seq: seq[key]})
		if len(batches[p]) == 100 {
			flush(p)
		}
	}
	for p := range parts {
		if len(batches[p]) > 0 {
			flush(p)
		}
	}
}

func createStreams(t *testing.T, c *protocol.Client, base string, names []string) {
	t.Helper()
	for _, s := range names {
		if err := c.CreateStream(context.Background(), base+"/"+s, protocol.StreamOptions{ContentType: protocol.ContentTypeJSON}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestThreeMembersHandleTenThousandMessagesOverFourPartitionsOnce(t *testing.T) {
	base := testBase(t)
	const parts, n = 4, 10000
	streams := partition.StreamNames("jobs", parts)
	c := &protocol.Client{HTTP: protocol.NewHTTPClient(8)}
	createStreams(t, c, base, streams)
	g, b := newLedger(), newBoard()
	members := []string{"a", "b", "c"}
	var ms []*Member
	for _, id := range members {
		m := join(t, fast(t, base, "jobs", id, streams...))
		ms = append(ms, m)
		worker(t, m, func(s string) string { return base + "/" + s }, g, b)
	}
	b.waitFor(t, 10*time.Second, "partitions not shared by all three", func(o map[string]string) bool {
		per := map[string]bool{}
		for _, m := range o {
			per[m] = true
		}
		return len(o) == parts && len(per) == 3
	})
	publish(t, c, base, "jobs", parts, n, 0)
	g.waitDistinct(t, n, 60*time.Second)
	for _, m := range ms {
		leave(t, m)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.total != n {
		t.Errorf("%d handlings of %d messages: %d duplicates", g.total, n, g.total-n)
	}
	if g.order != 0 {
		t.Errorf("%d per-key order violations", g.order)
	}
	for _, id := range members {
		if g.by[id] < n/6 {
			t.Errorf("member %s handled %d of %d, less than a sixth: %v", id, g.by[id], n, g.by)
		}
	}
	t.Logf("handled per member: %v", g.by)
}

func TestRollingDeployLosesNothing(t *testing.T) {
	base := testBase(t)
	const parts, n = 4, 10000
	streams := partition.StreamNames("jobs", parts)
	c := &protocol.Client{HTTP: protocol.NewHTTPClient(8)}
	createStreams(t, c, base, streams)
	g := newLedger()
	url := func(s string) string { return base + "/" + s }
	var live []*Member
	for i := range 3 {
		m := join(t, fast(t, base, "jobs", fmt.Sprintf("old-%d", i), streams...))
		worker(t, m, url, g, nil)
		live = append(live, m)
	}
	published := make(chan struct{})
	go func() {
		defer close(published)
		publish(t, c, base, "jobs", parts, n, 20*time.Millisecond)
	}()
	// Replace the members one at a time while the messages flow: start
	// the new one, then stop an old one, as a deployment does.
	for i := range 3 {
		m := join(t, fast(t, base, "jobs", fmt.Sprintf("new-%d", i), streams...))
		worker(t, m, url, g, nil)
		g.waitDistinct(t, g.distinct()+200, 30*time.Second) // some work in between
		leave(t, live[i])
	}
	<-published
	g.waitDistinct(t, n, 60*time.Second)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.order != 0 {
		t.Errorf("%d per-key order violations", g.order)
	}
	t.Logf("rolling deploy: %d distinct of %d, %d handlings (%d again), per member %v", len(g.times), n, g.total, g.total-len(g.times), g.by)
	if g.total != n {
		t.Errorf("%d messages handled twice across clean hand-overs", g.total-n)
	}
}
