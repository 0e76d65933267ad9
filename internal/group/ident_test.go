package group

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/durablestreams/watermill-durablestreams/internal/partition"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// Two live instances with one MemberID (misconfigured replicas): the
// newer one wins, the older one stops and says why, every message is
// handled, and what is handled twice is at most what the older one had in
// hand (no livelock, where each steals the streams back at every epoch).
func TestTwoLiveMembersWithOneIDTheNewerWinsTheOlderStops(t *testing.T) {
	base := testBase(t)
	const parts, n = 4, 4000
	streams := partition.StreamNames("jobs", parts)
	c := &protocol.Client{HTTP: protocol.NewHTTPClient(8)}
	createStreams(t, c, base, streams)
	g, b := newLedger(), newBoard()
	url := func(s string) string { return base + "/" + s }
	older := join(t, fast(t, base, "jobs", "a", streams...))
	workerAs(t, older, "older", url, g, b)
	b.waitFor(t, 10*time.Second, "the only member does not hold every stream", func(o map[string]string) bool { return len(o) == parts })

	published := make(chan struct{})
	go func() {
		defer close(published)
		publish(t, c, base, "jobs", parts, n, 20*time.Millisecond)
	}()
	defer func() { <-published }()         // a failure must not cut the publisher off
	g.waitDistinct(t, 200, 30*time.Second) // the older one is at work
	newer := join(t, fast(t, base, "jobs", "a", streams...))
	workerAs(t, newer, "newer", url, g, b)

	select {
	case <-older.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the older instance did not stop after a newer one joined with its ID")
	}
	if err := older.Err(); !errors.Is(err, ErrSuperseded) || !strings.Contains(err.Error(), `"a"`) {
		t.Fatalf("older instance stopped with %v, want ErrSuperseded naming the member ID", err)
	}
	select {
	case <-newer.Done():
		t.Fatalf("the newer instance stopped too: %v", newer.Err())
	default:
	}
	b.waitFor(t, 10*time.Second, "the newer instance does not hold every stream", func(o map[string]string) bool {
		for _, s := range streams {
			if o[s] != "newer" {
				return false
			}
		}
		return true
	})
	<-published
	g.waitDistinct(t, n, 60*time.Second)
	// The newer one holds every stream still: the older one claimed
	// nothing back.
	for s, o := range b.snapshot() {
		if o != "newer" {
			t.Errorf("stream %s is held by the %s instance at the end", s, o)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	t.Logf("handled per instance: %v, %d handlings of %d", g.by, g.total, n)
	// In hand at the switch: at most one read per stream, and a publish
	// request carries at most 100 jobs.
	if again := g.total - n; again > parts*100 {
		t.Errorf("%d messages handled twice, more than the older instance had in hand", again)
	}
	if g.order != 0 {
		t.Errorf("%d per-key order violations", g.order)
	}
}

// heldLeave holds every "leave" record of the members stream until
// released: the old incarnation's leave is still on the wire.
type heldLeave struct {
	base    http.RoundTripper
	sending chan struct{} // closed when a leave is being sent
	release chan struct{}
	once    sync.Once
}

func (h *heldLeave) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && req.Body != nil {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		if bytes.Contains(body, []byte(`"k":"leave"`)) {
			h.once.Do(func() { close(h.sending) })
			select {
			case <-h.release:
			case <-req.Context().Done():
				return nil, req.Context().Err()
			}
		}
	}
	return h.base.RoundTrip(req)
}

// A member restarted under its ID before the old incarnation's leave
// record landed: that record must not make the others take the new
// incarnation for gone (they would fence it, and it would starve).
func TestRestartUnderOneIDBeforeTheOldLeaveLandsNeitherStarvesNorDuplicates(t *testing.T) {
	base := testBase(t)
	const parts, n = 4, 4000
	streams := partition.StreamNames("jobs", parts)
	c := &protocol.Client{HTTP: protocol.NewHTTPClient(8)}
	createStreams(t, c, base, streams)
	g, b := newLedger(), newBoard()
	url := func(s string) string { return base + "/" + s }

	other := join(t, fast(t, base, "jobs", "b", streams...))
	workerAs(t, other, "b", url, g, b)
	held := &heldLeave{base: protocol.NewHTTPClient(8).Transport, sending: make(chan struct{}), release: make(chan struct{})}
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(held.release) }) }
	t.Cleanup(unblock)
	oldCfg := fast(t, base, "jobs", "a", streams...)
	oldCfg.Client = &protocol.Client{HTTP: &http.Client{Transport: held}, RequestTimeout: 5 * time.Second}
	old := join(t, oldCfg)
	workerAs(t, old, "a-old", url, g, b)
	split := func(o map[string]string, x, y string) bool {
		per := map[string]int{}
		for _, m := range o {
			per[m]++
		}
		return len(o) == parts && per[x] == parts/2 && per[y] == parts/2
	}
	b.waitFor(t, 10*time.Second, "a-old and b do not share the streams", func(o map[string]string) bool { return split(o, "a-old", "b") })

	leaving := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		leaving <- old.Leave(ctx)
	}()
	<-held.sending // the old one handed its streams over; its leave is on the wire
	restarted := join(t, fast(t, base, "jobs", "a", streams...))
	workerAs(t, restarted, "a-new", url, g, b)
	b.waitFor(t, 10*time.Second, "the restarted member did not take its streams back", func(o map[string]string) bool { return split(o, "a-new", "b") })
	unblock()
	if err := <-leaving; err != nil {
		t.Fatalf("old incarnation's leave: %v", err)
	}

	// The old leave has landed: from now on b must go on holding a alive.
	published := make(chan struct{})
	go func() {
		defer close(published)
		publish(t, c, base, "jobs", parts, n, 20*time.Millisecond)
	}()
	defer func() { <-published }() // a failure must not cut the publisher off
	for done := false; !done; {
		select {
		case <-published:
			done = true
		case <-b.changed:
			if o := b.snapshot(); !split(o, "a-new", "b") {
				t.Fatalf("the old incarnation's leave moved streams: owners %v", o)
			}
		}
	}
	g.waitDistinct(t, n, 60*time.Second)
	if o := b.snapshot(); !split(o, "a-new", "b") {
		t.Fatalf("the old incarnation's leave moved streams: owners %v", o)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	t.Logf("handled per member: %v, %d handlings of %d", g.by, g.total, n)
	if g.by["a-new"] == 0 {
		t.Errorf("the restarted member handled nothing: %v", g.by)
	}
	if g.total != n {
		t.Errorf("%d messages handled twice across clean hand-overs", g.total-n)
	}
}

// crash stops m's background work without a word to the group, as a
// killed process would: no heartbeat, no leave record (the test's cleanup
// still calls Leave, which then announces a late leave of that
// incarnation).
func crash(m *Member) {
	m.stopCoord()
	m.coordWG.Wait()
	m.stopBeat()
	m.beatWG.Wait()
}

// An ordinary restart under one ID, the old instance gone without a leave
// record: the new one takes the stream back at once (not after the
// session timeout), from the old one's position, and keeps it when the
// old incarnation's leave comes late.
func TestRestartUnderOneIDAfterACrashTakesTheStreamBackAtOnce(t *testing.T) {
	base := testBase(t)
	old := join(t, fast(t, base, "t", "a", "t"))
	var l *Lease
	select {
	case l = <-old.Assignments():
	case <-time.After(10 * time.Second):
		t.Fatal("the only member claimed nothing")
	}
	ctx := context.Background()
	if err := l.Store(ctx, json.RawMessage(`7`)); err != nil {
		t.Fatal(err)
	}
	crash(old)
	restarted := join(t, fast(t, base, "t", "a", "t"))
	joined := time.Now()
	var again *Lease
	select {
	case again = <-restarted.Assignments():
	case <-time.After(restarted.cfg.SessionTimeout / 2):
		t.Fatalf("the restarted member did not take its stream back within half the session timeout (%v)", restarted.cfg.SessionTimeout)
	}
	t.Logf("taken back %v after the join", time.Since(joined))
	if string(again.Start()) != "7" || again.Epoch() != l.Epoch()+1 {
		t.Fatalf("taken back at epoch %d from %s, want epoch %d from 7", again.Epoch(), again.Start(), l.Epoch()+1)
	}
	// The old incarnation's late release (fenced) and leave change
	// nothing for the new one.
	if err := l.Release(ctx, nil); !errors.Is(err, ErrFenced) {
		t.Fatalf("the old incarnation released its lost lease: %v", err)
	}
	leave(t, old)
	if err := restarted.syncMembers(ctx); err != nil {
		t.Fatal(err)
	}
	if err := again.Store(ctx, json.RawMessage(`8`)); err != nil || !again.Valid() {
		t.Fatalf("the new incarnation lost its lease after the old one's leave: %v", err)
	}
	select {
	case <-restarted.Done():
		t.Fatalf("the restarted member stopped: %v", restarted.Err())
	default:
	}
	if err := again.Release(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

// newObserver is a Member that only takes in members records.
func newObserver(id string) *Member {
	m := &Member{
		cfg:     Config{MemberID: id, SessionTimeout: time.Hour},
		log:     watermill.NopLogger{},
		epoch0:  time.Now(),
		inc:     "mine",
		done:    make(chan struct{}),
		poke:    make(chan struct{}, 1),
		members: map[string]map[string]*incarnation{},
		older:   map[string]bool{},
		syncs:   map[string]chan struct{}{},
		held:    map[string]*Lease{},
	}
	m.session.Store(&sessionState{})
	m.beatCtx, m.stopBeat = context.WithCancel(context.Background())
	return m
}

func TestObservePerIncarnation(t *testing.T) {
	alive := func(m *Member, id, inc string) bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.aliveLocked(id, inc, m.now())
	}
	live := func(m *Member) []string {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.liveLocked(m.now())
	}
	t.Run("a leave or heartbeat of another incarnation changes nothing", func(t *testing.T) {
		m := newObserver("me")
		m.observe([]memberRecord{{Member: "b", Inc: "x", Kind: kindJoin}, {Member: "b", Inc: "y", Kind: kindJoin}, {Member: "b", Inc: "x", Kind: kindLeave}})
		if !alive(m, "b", "y") || alive(m, "b", "x") || !slices.Contains(live(m), "b") {
			t.Fatalf("b/y alive %v, b/x alive %v, live %v: want y alive, x not", alive(m, "b", "y"), alive(m, "b", "x"), live(m))
		}
		m.observe([]memberRecord{{Member: "b", Inc: "x", Kind: kindBeat}})
		if alive(m, "b", "x") {
			t.Fatal("a heartbeat of a superseded incarnation brought it back")
		}
		m.observe([]memberRecord{{Member: "b", Inc: "y", Kind: kindLeave}})
		if alive(m, "b", "y") || slices.Contains(live(m), "b") {
			t.Fatalf("b left but counts as alive: live %v", live(m))
		}
	})
	t.Run("a leave that lands after a newer incarnation's join", func(t *testing.T) {
		m := newObserver("me")
		// Only heartbeats of the old one were seen (it joined before us).
		m.observe([]memberRecord{{Member: "b", Inc: "x", Kind: kindBeat}, {Member: "b", Inc: "y", Kind: kindJoin}, {Member: "b", Inc: "x", Kind: kindLeave}, {Member: "b", Inc: "y", Kind: kindBeat}})
		if !alive(m, "b", "y") || !slices.Contains(live(m), "b") {
			t.Fatalf("the old incarnation's leave ended the new one: live %v", live(m))
		}
	})
	t.Run("records without an incarnation read as before", func(t *testing.T) {
		var recs []memberRecord
		if err := json.Unmarshal([]byte(`[{"m":"b","k":"join"},{"m":"b","k":"hb"}]`), &recs); err != nil {
			t.Fatal(err)
		}
		m := newObserver("me")
		m.observe(recs)
		if !alive(m, "b", "") {
			t.Fatal("an old-format member is not alive")
		}
		m.observe([]memberRecord{{Member: "b", Kind: kindLeave}, {Member: "b", Kind: kindBeat}})
		if alive(m, "b", "") || slices.Contains(live(m), "b") {
			t.Fatalf("an old-format member that left counts as alive: live %v", live(m))
		}
	})
	t.Run("a join of our ID before our own is an older instance", func(t *testing.T) {
		m := newObserver("me")
		m.observe([]memberRecord{{Member: "me", Inc: "old", Kind: kindJoin}, {Member: "me", Inc: "mine", Kind: kindJoin}, {Member: "me", Inc: "old", Kind: kindBeat}})
		if m.Err() != nil || !m.older["old"] {
			t.Fatalf("superseded by an older instance: %v (older %v)", m.Err(), m.older)
		}
	})
	t.Run("a join of our ID after our own is a newer instance", func(t *testing.T) {
		m := newObserver("me")
		l := &Lease{m: m, stream: "s", done: make(chan struct{}), ended: make(chan struct{}), revoked: make(chan struct{})}
		m.held["s"] = l
		m.observe([]memberRecord{{Member: "me", Inc: "mine", Kind: kindJoin}, {Member: "me", Kind: kindJoin}})
		select {
		case <-m.Done():
		default:
			t.Fatal("a newer instance (of an earlier version, without an incarnation) did not stop this one")
		}
		var fe *FencedError
		if !errors.Is(m.Err(), ErrSuperseded) || !errors.As(l.Err(), &fe) || fe.Reason != reasonSuperseded {
			t.Fatalf("member error %v, lease error %v: want ErrSuperseded and a superseded FencedError", m.Err(), l.Err())
		}
		if l.Valid() {
			t.Fatal("the lease is still valid")
		}
	})
}
