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

// firstDelivery consumes a member's messages (acking them) and closes
// got at its first one.
type firstDelivery struct {
	once sync.Once
	got  chan struct{}
	at   time.Time
	done chan struct{}
}

func consume(msgs <-chan *message.Message) *firstDelivery {
	f := &firstDelivery{got: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for msg := range msgs {
			f.once.Do(func() { f.at = time.Now(); close(f.got) })
			msg.Ack()
		}
	}()
	return f
}

// failoverTry is one try: a fresh topic and group, member "a" active and
// "b" standing by; then a is killed (kill) or closed, and the result is
// the time from then to b's first delivery.
func failoverTry(ctx context.Context, r *runCtx, kill bool, session, heartbeat time.Duration) (time.Duration, error) {
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
		return 0, err
	}
	defer pub.Close()
	// The first message creates the topic and records its count.
	if err := pub.Publish(topic, message.NewMessage(uuid.NewString(), []byte(`{}`))); err != nil {
		return 0, err
	}
	trickleCtx, stopTrickle := context.WithCancel(ctx)
	trickled := make(chan error, 1)
	go func() { trickled <- trickle(trickleCtx, pub, topic) }()
	defer func() { stopTrickle(); <-trickled }()

	// The members sort a < b, so a keeps the stream when b joins.
	ks := &killSwitch{}
	hcA := ks.client()
	defer hcA.CloseIdleConnections()
	a, err := newGroupMember(baseURL, group, "a", hcA, session, heartbeat)
	if err != nil {
		return 0, err
	}
	var closeOnce sync.Once
	closeA := func() { closeOnce.Do(func() { _ = a.Close() }) }
	defer closeA()
	msgsA, err := a.Subscribe(ctx, topic)
	if err != nil {
		return 0, err
	}
	fa := consume(msgsA)
	defer func() { closeA(); <-fa.done }()
	if err := waitFor(ctx, fa.got, "member a's first delivery"); err != nil {
		return 0, err
	}
	b, err := newGroupMember(baseURL, group, "b", nil, session, heartbeat)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	msgsB, err := b.Subscribe(ctx, topic)
	if err != nil {
		return 0, err
	}
	fb := consume(msgsB)
	defer func() { _ = b.Close(); <-fb.done }()
	// b listens 1.5 heartbeat intervals before it claims anything; past
	// that it is a settled standby.
	settle := heartbeat
	if settle == 0 {
		settle = defaultHeartbeatInterval
	}
	select {
	case <-time.After(3 * settle):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case <-fb.got:
		return 0, fmt.Errorf("standby b delivered before a went away")
	default:
	}

	t0 := time.Now()
	if kill {
		// a cannot reach the server any more: its Close (Leave) hands
		// nothing over; it only ends a's goroutines meanwhile.
		ks.kill()
	}
	closing := make(chan struct{})
	go func() { defer close(closing); closeA() }()
	defer func() { <-closing }()
	if err := waitFor(ctx, fb.got, "member b's first delivery"); err != nil {
		return 0, err
	}
	return fb.at.Sub(t0), nil
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
	for i := range tries {
		d, err := failoverTry(ctx, r, true, session, heartbeat)
		if err != nil {
			return nil, fmt.Errorf("failover try %d: %w", i+1, err)
		}
		fails = append(fails, d)
		d, err = failoverTry(ctx, r, false, session, heartbeat)
		if err != nil {
			return nil, fmt.Errorf("handover try %d: %w", i+1, err)
		}
		hands = append(hands, d)
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return map[string]float64{
		"11-fail-p50": ms(percentile(fails, 50)),
		"11-fail-max": ms(percentile(fails, 100)),
		"11-hand-p50": ms(percentile(hands, 50)),
		"11-hand-max": ms(percentile(hands, 100)),
	}, nil
}
