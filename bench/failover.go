package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
)

// The failover rows (issue 14) time how long a single-stream topic goes
// without delivery when its active member goes away, with a standby in the
// same group: killed (failover) or closed (clean handover). A publisher
// appends a message every trickleEvery throughout, so "first delivery by
// the new owner" is at most trickleEvery after it could read.
//
// The kill is in-process: the member's HTTP client is cut off, every TCP
// connection closed and no new one dialled (killSwitch), which is what the
// server sees of a SIGKILLed process or a network partition. The member
// then cannot heartbeat, release or leave; the standby takes over once
// the session timeout has passed.

const trickleEvery = 10 * time.Millisecond

// errKilled is what a killed member's dials get.
var errKilled = errors.New("bench: member killed")

// killSwitch is a dialer whose connections all close at once on kill.
type killSwitch struct {
	dialer net.Dialer
	mu     sync.Mutex
	killed bool
	conns  map[net.Conn]struct{}
}

func (k *killSwitch) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := k.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.killed {
		_ = conn.Close()
		return nil, errKilled
	}
	if k.conns == nil {
		k.conns = make(map[net.Conn]struct{})
	}
	k.conns[conn] = struct{}{}
	return conn, nil
}

func (k *killSwitch) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.killed = true
	for c := range k.conns {
		_ = c.Close()
	}
}

// client is an HTTP client that dials through the switch.
func (k *killSwitch) client() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = k.dial
	return &http.Client{Transport: t}
}

// deliveries consumes a member's messages (acking them): got closes at
// its first one; arm watches for the first one after a moment.
type deliveries struct {
	got  chan struct{}
	done chan struct{}

	mu    sync.Mutex
	n     int
	last  time.Time
	watch chan struct{} // closed at the first delivery after arm
	at    time.Time     // when watch closed
}

func consume(msgs <-chan *message.Message) *deliveries {
	f := &deliveries{got: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for msg := range msgs {
			now := time.Now()
			f.mu.Lock()
			if f.n++; f.n == 1 {
				close(f.got)
			}
			f.last = now
			if f.watch != nil && f.at.IsZero() {
				f.at = now
				close(f.watch)
			}
			f.mu.Unlock()
			msg.Ack()
		}
	}()
	return f
}

// lastAt is when the member last delivered (zero: never).
func (f *deliveries) lastAt() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// arm returns a channel closed at the member's next delivery.
func (f *deliveries) arm() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watch, f.at = make(chan struct{}), time.Time{}
	return f.watch
}

func (f *deliveries) armedAt() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.at
}

// failoverMember is one member of a try, with the switch that kills it.
type failoverMember struct {
	sub       groupMember
	ks        *killSwitch
	hc        *http.Client
	closeOnce sync.Once
	d         *deliveries
}

func (m *failoverMember) close() { m.closeOnce.Do(func() { _ = m.sub.Close() }) }

// failoverTry is one try: a fresh topic and group, member "a" subscribes
// first, then "b"; the assignment (rendezvous hashing) gives the stream
// to either. The one that delivers is then killed (kill) or closed, and
// the result is the time from then to the other's first delivery.
func failoverTry(ctx context.Context, r *runCtx, kill bool, session, heartbeat time.Duration) (_ time.Duration, moved bool, err error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	baseURL := r.b.baseURL()
	topic := "bench-failover-" + uuid.NewString()[:8]
	group := "bench-failover-" + uuid.NewString()[:8]
	defer func() {
		for _, s := range partitionStreams(topic, 1) {
			r.b.deleteStream(baseURL + "/" + s)
		}
	}()

	pub, err := newKeyedPublisher(baseURL, 1)
	if err != nil {
		return 0, false, err
	}
	defer pub.Close()
	// The first message creates the topic and records its count.
	if err := pub.Publish(topic, message.NewMessage(uuid.NewString(), []byte(`{}`))); err != nil {
		return 0, false, err
	}
	trickleCtx, stopTrickle := context.WithCancel(ctx)
	trickled := make(chan error, 1)
	go func() { trickled <- trickle(trickleCtx, pub, topic) }()
	defer func() { stopTrickle(); <-trickled }()

	var members []*failoverMember
	defer func() {
		for _, m := range members {
			m.close()
			<-m.d.done
			m.hc.CloseIdleConnections()
		}
	}()
	for _, id := range []string{"a", "b"} {
		m := &failoverMember{ks: &killSwitch{}}
		m.hc = m.ks.client()
		if m.sub, err = newGroupMember(baseURL, group, id, m.hc, session, heartbeat); err != nil {
			return 0, false, err
		}
		msgs, err := m.sub.Subscribe(ctx, topic)
		if err != nil {
			_ = m.sub.Close()
			return 0, false, err
		}
		m.d = consume(msgs)
		members = append(members, m)
		if id == "a" {
			if err := waitFor(ctx, m.d.got, "member a's first delivery"); err != nil {
				return 0, false, err
			}
		}
	}
	// b claims as soon as it has read its own join back; after three
	// heartbeat intervals the two have settled: one delivers, the other
	// stands by.
	settle := heartbeat
	if settle == 0 {
		settle = defaultHeartbeatInterval
	}
	if err := sleepCtx(ctx, 3*settle); err != nil {
		return 0, false, err
	}
	active, standby := members[0], members[1]
	if standby.d.lastAt().After(active.d.lastAt()) {
		active, standby = standby, active
	}
	if time.Since(standby.d.lastAt()) < settle {
		return 0, false, fmt.Errorf("both members delivered within the last %v", settle)
	}
	next := standby.d.arm()

	t0 := time.Now()
	if kill {
		// The active member cannot reach the server any more: its Close
		// (Leave) hands nothing over; it only ends its goroutines
		// meanwhile.
		active.ks.kill()
	}
	closing := make(chan struct{})
	go func() { defer close(closing); active.close() }()
	defer func() { <-closing }()
	if err := waitFor(ctx, next, "the standby's first delivery"); err != nil {
		return 0, false, err
	}
	return standby.d.armedAt().Sub(t0), active == members[1], nil
}

// trickle publishes a message every trickleEvery until ctx is done.
func trickle(ctx context.Context, pub message.Publisher, topic string) error {
	t := time.NewTicker(trickleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			msg := message.NewMessage(uuid.NewString(), []byte(`{}`))
			msg.SetContext(ctx)
			if err := pub.Publish(topic, msg); err != nil && ctx.Err() == nil {
				return err
			}
		}
	}
}

// sleepCtx sleeps d, or less if ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func waitFor(ctx context.Context, ch <-chan struct{}, what string) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
	}
}

// failoverAll is the failover and handover tries, alternating.
func failoverAll(ctx context.Context, r *runCtx, tries int, session, heartbeat time.Duration) (map[string]float64, error) {
	var fails, hands []time.Duration
	moves := 0
	for i := range tries {
		d, moved, err := failoverTry(ctx, r, true, session, heartbeat)
		if err != nil {
			return nil, fmt.Errorf("failover try %d: %w", i+1, err)
		}
		fails = append(fails, d)
		if moved {
			moves++
		}
		d, moved, err = failoverTry(ctx, r, false, session, heartbeat)
		if err != nil {
			return nil, fmt.Errorf("handover try %d: %w", i+1, err)
		}
		hands = append(hands, d)
		if moved {
			moves++
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return map[string]float64{
		"11-fail-p50":  ms(percentile(fails, 50)),
		"11-fail-max":  ms(percentile(fails, 100)),
		"11-hand-p50":  ms(percentile(hands, 50)),
		"11-hand-max":  ms(percentile(hands, 100)),
		"11-joinmoves": 100 * float64(moves) / float64(2*tries),
	}, nil
}
