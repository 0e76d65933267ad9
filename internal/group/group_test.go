package group

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	cases := []struct {
		name   string
		status int
		header http.Header
		want   outcome
		reason string
	}{
		{"written", 200, nil, written, ""},
		{"duplicate (Node server)", 204, nil, duplicate, ""},
		{"duplicate with tail (Caddy server)", 204, h("Stream-Next-Offset", "0000000000000001_0000000000000010"), duplicate, ""},
		{"newer epoch owns it", 403, h("Producer-Epoch", "7"), fenced, reasonStaleEpoch + ", server epoch 7"},
		{"403 without epoch", 403, nil, fenced, reasonStaleEpoch},
		{"closed", 409, h("Stream-Closed", "true"), fenced, reasonClosed},
		{"sequence gap: state forgotten", 409, h("Producer-Expected-Seq", "0", "Producer-Received-Seq", "3"), fenced, reasonSeqGap + ", expected seq 0"},
		{"409 without headers", 409, nil, fenced, reasonSeqGap},
		{"stream deleted", 404, nil, fenced, reasonMissing},
		{"rate limited", 429, h("Retry-After", "1"), again, ""},
		{"server trouble", 503, nil, again, ""},
		{"bad request", 400, nil, failed, "unexpected answer 400 Bad Request"},
		{"gone", 410, nil, failed, "unexpected answer 410 Gone"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.header == nil {
				c.header = http.Header{}
			}
			got, reason := classify(c.status, c.header)
			if got != c.want || reason != c.reason {
				t.Fatalf("classify(%d) = %v %q, want %v %q", c.status, got, reason, c.want, c.reason)
			}
		})
	}
}

func TestAssignIsBalancedWithinOne(t *testing.T) {
	streams := []string{"t.p3", "t.p0", "t.p2", "t.p1", "t.p4", "t.p5", "t.p6"}
	for n := 1; n <= 9; n++ {
		var members []string
		for i := range n {
			members = append(members, string(rune('a'+i)))
		}
		owner := map[string]string{}
		lo, hi := len(streams), 0
		for _, me := range members {
			mine := assign(streams, members, me)
			lo, hi = min(lo, len(mine)), max(hi, len(mine))
			for _, s := range mine {
				if o, ok := owner[s]; ok {
					t.Fatalf("%d members: %s given to %s and %s", n, s, o, me)
				}
				owner[s] = me
			}
		}
		if len(owner) != len(streams) || hi-lo > 1 {
			t.Fatalf("%d members: %d of %d streams assigned, sizes %d..%d", n, len(owner), len(streams), lo, hi)
		}
	}
}

func TestCurrentIgnoresLowerEpochsWrittenLater(t *testing.T) {
	recs := []ownerRecord{
		{Owner: "a", Epoch: 0, Position: json.RawMessage(`1`)},
		{Owner: "b", Epoch: 1, Position: json.RawMessage(`2`)},
		{Owner: "b", Epoch: 1, Position: json.RawMessage(`3`)},
		// a zombie the server forgot to fence (producer state cleanup)
		{Owner: "a", Epoch: 0, Position: json.RawMessage(`9`)},
	}
	cur, ok := current(recs)
	if !ok || cur.Owner != "b" || string(cur.Position) != "3" {
		t.Fatalf("current = %+v %v, want b at position 3", cur, ok)
	}
	if _, ok := current(nil); ok {
		t.Fatal("an empty stream has an owner")
	}
}

func TestConfigValidate(t *testing.T) {
	good := fast(t, "http://localhost:1/v1/stream/x", "t", "m", "t")
	good.setDefaults()
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	bad := map[string]func(c *Config){
		"no base":          func(c *Config) { c.BaseURL = "" },
		"slash in group":   func(c *Config) { c.Group = "a/b" },
		"no streams":       func(c *Config) { c.Streams = nil },
		"stream twice":     func(c *Config) { c.Streams = []string{"a", "a"} },
		"heartbeat slow":   func(c *Config) { c.HeartbeatInterval = c.SessionTimeout / 2 },
		"margin too large": func(c *Config) { c.Margin = c.SessionTimeout },
		"negative":         func(c *Config) { c.SessionTimeout = -1 },
	}
	for name, f := range bad {
		c := good
		f(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate() = %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestSingleStreamOneActiveMemberHandsOverOnLeave(t *testing.T) {
	base := testBase(t)
	b := newBoard()
	a := join(t, fast(t, base, "t", "a", "t"))
	consume(t, a, b)
	b.waitFor(t, 5*time.Second, "a never got the stream", func(o map[string]string) bool { return o["t"] == "a" })

	s := join(t, fast(t, base, "t", "s", "t"))
	consume(t, s, b)
	// The standby stays idle: a holds the stream through several of s's
	// heartbeats and its warm-up.
	idle := time.NewTimer(4 * s.cfg.HeartbeatInterval)
	for waiting := true; waiting; {
		select {
		case <-b.changed:
			if o := b.snapshot(); o["t"] != "a" {
				t.Fatalf("standby took over from a live owner: %v", o)
			}
		case <-idle.C:
			waiting = false
		}
	}

	start := time.Now()
	leave(t, a)
	b.waitFor(t, 5*time.Second, "standby did not take over", func(o map[string]string) bool { return o["t"] == "s" })
	took := time.Since(start)
	t.Logf("handover on Leave took %v", took)
	if took > 1500*time.Millisecond {
		t.Errorf("handover on Leave took %v, want about a second at most", took)
	}
	if b.overlap != 0 {
		t.Errorf("%d overlapping ownerships", b.overlap)
	}
}

func TestThreeMembersShareFourStreams(t *testing.T) {
	base := testBase(t)
	streams := []string{"t.p0", "t.p1", "t.p2", "t.p3"}
	b := newBoard()
	for _, id := range []string{"a", "b", "c"} {
		consume(t, join(t, fast(t, base, "t", id, streams...)), b)
	}
	b.waitFor(t, 10*time.Second, "streams not shared out 2/1/1", func(o map[string]string) bool {
		per := map[string]int{}
		for _, m := range o {
			per[m]++
		}
		return len(o) == 4 && len(per) == 3
	})
}

func TestDeadMemberIsReplacedAndFencedByTheServer(t *testing.T) {
	base := testBase(t)
	// a trusts its own session for a long time, so its late Store passes
	// the local check and reaches the server, which must refuse it.
	cfgA := fast(t, base, "t", "a", "t")
	cfgA.SessionTimeout, cfgA.Margin = 30*time.Second, time.Second
	a := join(t, cfgA)
	lease := firstLease(t, a)
	ctx := context.Background()
	if err := lease.Store(ctx, json.RawMessage(`{"offset":"1"}`)); err != nil {
		t.Fatal(err)
	}
	// a "dies": no more heartbeats and no more claims, nothing released.
	a.stopCoord()
	a.coordWG.Wait()
	a.stopBeat()
	a.beatWG.Wait()

	died := time.Now()
	s := join(t, fast(t, base, "t", "s", "t"))
	var next *Lease
	select {
	case next = <-s.Assignments():
	case <-time.After(10 * time.Second):
		t.Fatal("no replacement for the dead member")
	}
	took := time.Since(died)
	t.Logf("replaced after %v (SessionTimeout %v)", took, s.cfg.SessionTimeout)
	if took < s.cfg.SessionTimeout {
		t.Errorf("replaced after %v, before the session timeout %v", took, s.cfg.SessionTimeout)
	}
	if string(next.Start()) != `{"offset":"1"}` {
		t.Errorf("new owner starts at %s, want the dead owner's stored position", next.Start())
	}
	if !lease.Valid() {
		t.Fatal("the test needs a's lease to be locally valid still")
	}
	// The new owner closed the dead owner's position log: the server
	// refuses the zombie's write (409 Stream-Closed).
	err := lease.Store(ctx, json.RawMessage(`{"offset":"2"}`))
	var fe *FencedError
	if !errors.As(err, &fe) || fe.Reason != reasonClosed {
		t.Fatalf("zombie Store = %v, want the server's refusal as a FencedError", err)
	}
	select {
	case <-lease.Done():
	case <-time.After(time.Second):
		t.Fatal("a fenced lease is not done")
	}
	if lease.Valid() {
		t.Error("a fenced lease is still valid")
	}
	// The zombie's refused write left no trace: the new owner's start holds.
	if err := next.Store(ctx, json.RawMessage(`{"offset":"3"}`)); err != nil {
		t.Fatalf("new owner Store: %v", err)
	}
	for _, url := range []string{s.cfg.ownerURL("t"), s.cfg.logURL("t", 0, 0), s.cfg.logURL("t", 1, 0)} {
		recs, err := readOwnerRecords(ctx, s.cfg.Client, s.cfg.RetryPolicy, url)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if string(r.Position) == `{"offset":"2"}` {
				t.Fatalf("the fenced write landed in %s: %+v", url, recs)
			}
		}
	}
	// Nor can a zombie release: the root refuses its epoch (403).
	if err := lease.Release(ctx, nil); !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie Release = %v, want ErrFenced", err)
	}
	if err := next.Release(ctx, nil); err != nil {
		t.Fatalf("release: %v", err)
	}
}

func TestLeaveReleasesWhatTheConsumerDidNot(t *testing.T) {
	base := testBase(t)
	a := join(t, fast(t, base, "t", "a", "t"))
	lease := firstLease(t, a)
	ctx := context.Background()
	if err := lease.Store(ctx, json.RawMessage(`"kept"`)); err != nil {
		t.Fatal(err)
	}
	leaveCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := a.Leave(leaveCtx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if !errors.Is(lease.Store(ctx, json.RawMessage(`"late"`)), ErrFenced) {
		t.Fatal("a lease stores after its member left")
	}
	recs, err := readOwnerRecords(ctx, a.cfg.Client, a.cfg.RetryPolicy, a.cfg.ownerURL("t"))
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := current(recs)
	if !cur.Released || string(cur.Position) != `"kept"` {
		t.Fatalf("after Leave the stream's ownership is %+v, want released at the stored position", cur)
	}
}

func TestLeaseIsInvalidOnceTheLocalDeadlinePasses(t *testing.T) {
	base := testBase(t)
	a := join(t, fast(t, base, "t", "a", "t"))
	lease := firstLease(t, a)
	if !lease.Valid() {
		t.Fatal("a fresh lease is not valid")
	}
	a.stopBeat()
	a.beatWG.Wait()
	deadline := a.session.Load().deadline
	select {
	case <-lease.Done():
	case <-time.After(a.cfg.SessionTimeout):
		t.Fatal("the lease did not end at its local deadline")
	}
	if a.now() < deadline {
		t.Fatalf("lease ended %v before its deadline", deadline-a.now())
	}
	if lease.Valid() {
		t.Fatal("lease valid after its local deadline")
	}
	err := lease.Store(context.Background(), json.RawMessage(`1`))
	var fe *FencedError
	if !errors.As(err, &fe) || fe.Reason != reasonExpired {
		t.Fatalf("Store after the deadline = %v, want the expiry FencedError", err)
	}
}

// TestLeaseLostToALocalExpiryStillReleases: a member paused past its
// session while handing a stream over loses the lease to its own clock,
// but nobody claimed the stream meanwhile; its release must still land, or
// the stream names a live member that does not read it and stalls until
// that member leaves (the TestConcurrentSubscribe stall).
func TestLeaseLostToALocalExpiryStillReleases(t *testing.T) {
	base := testBase(t)
	a := join(t, fast(t, base, "t", "a", "t"))
	lease := firstLease(t, a)
	ctx := context.Background()
	if err := lease.Store(ctx, json.RawMessage(`"kept"`)); err != nil {
		t.Fatal(err)
	}
	a.stopBeat()
	a.beatWG.Wait()
	select {
	case <-lease.Ended():
	case <-time.After(a.cfg.SessionTimeout):
		t.Fatal("the lease did not end at its local deadline")
	}
	if err := lease.Release(ctx, nil); err != nil {
		t.Fatalf("Release after a local expiry: %v", err)
	}
	recs, err := readOwnerRecords(ctx, a.cfg.Client, a.cfg.RetryPolicy, a.cfg.ownerURL("t"))
	if err != nil {
		t.Fatal(err)
	}
	if cur, _ := current(recs); !cur.Released || string(cur.Position) != `"kept"` {
		t.Fatalf("after the release the stream's ownership is %+v, want released at the stored position", cur)
	}
}

// TestAnExpiredReleaseIsRefusedOnceAnotherClaimed: the release of a lease
// lost to the clock is fenced by the server when a newer owner claimed.
func TestAnExpiredReleaseIsRefusedOnceAnotherClaimed(t *testing.T) {
	base := testBase(t)
	a := join(t, fast(t, base, "t", "a", "t"))
	lease := firstLease(t, a)
	a.stopBeat()
	a.beatWG.Wait()
	b := join(t, fast(t, base, "t", "b", "t"))
	select {
	case <-b.Assignments(): // after a's session, b claims at the next epoch
	case <-time.After(10 * time.Second):
		t.Fatal("b got no lease")
	}
	if err := lease.Release(context.Background(), json.RawMessage(`"late"`)); !errors.Is(err, ErrFenced) {
		t.Fatalf("a's late release = %v, want ErrFenced", err)
	}
}

func TestPositionLogsRotateAndAClaimReadsOnlyTheLast(t *testing.T) {
	base := testBase(t)
	cfg := fast(t, base, "t", "a", "t")
	cfg.rotateEvery, cfg.hintEvery = 5, 2
	a := join(t, cfg)
	lease := firstLease(t, a)
	ctx := context.Background()
	for i := 1; i <= 23; i++ {
		if err := lease.Store(ctx, json.RawMessage(fmt.Sprint(i))); err != nil {
			t.Fatalf("store %d: %v", i, err)
		}
	}
	// Logs of 5 positions and a closing one: 1-6 in log 0, 7-12 in log 1,
	// 13-18 in log 2, 19-23 in log 3. The root names a log every second
	// rotation (log 2, after 12), and the logs before it are deleted.
	root, err := readOwnerRecords(ctx, a.cfg.Client, a.cfg.RetryPolicy, a.cfg.ownerURL("t"))
	if err != nil {
		t.Fatal(err)
	}
	if len(root) != 2 || root[1].Log != 2 || string(root[1].Position) != "12" {
		t.Fatalf("root holds %d records %+v, want the claim and one hint naming log 2", len(root), root)
	}
	closed, err := readOwnerRecords(ctx, a.cfg.Client, a.cfg.RetryPolicy, a.cfg.logURL("t", 0, 2))
	if err != nil || len(closed) != 6 || closed[5].Next != 3 || string(closed[5].Position) != "18" {
		t.Fatalf("log 2 = %+v %v, want 13-18, closed naming log 3", closed, err)
	}
	last, err := readOwnerRecords(ctx, a.cfg.Client, a.cfg.RetryPolicy, a.cfg.logURL("t", 0, 3))
	if err != nil || len(last) != 5 || string(last[4].Position) != "23" {
		t.Fatalf("current log = %+v %v, want 19-23", last, err)
	}
	for _, n := range []int64{0, 1} {
		if _, ok, _ := a.cfg.Client.Tail(ctx, a.cfg.logURL("t", 0, n)); ok {
			t.Fatalf("log %d, before the hint, was kept", n)
		}
	}
	// A member that takes over after a crash starts at the last position,
	// and the former owner's next store is refused by the server.
	a.stopCoord()
	a.coordWG.Wait()
	a.stopBeat()
	a.beatWG.Wait()
	b := join(t, fast(t, base, "t", "b", "t"))
	select {
	case next := <-b.Assignments():
		if string(next.Start()) != "23" {
			t.Fatalf("take-over starts at %s, want 23", next.Start())
		}
		a.extend(a.now()) // as if a resumed with its session intact
		var fe *FencedError
		if err := lease.Store(ctx, json.RawMessage("24")); !errors.As(err, &fe) || fe.Reason != reasonClosed {
			t.Fatalf("the former owner's store after the take-over: %v, want fenced (closed log)", err)
		}
		if err := next.Release(ctx, nil); err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no take-over")
	}
}
