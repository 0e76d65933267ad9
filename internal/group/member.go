package group

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/google/uuid"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
)

// Member is one process's membership of a consumer group on one topic. It
// heartbeats, watches the other members, and claims the streams the
// assignment gives it; each claimed stream arrives on Assignments as a
// Lease. It is safe for concurrent use.
type Member struct {
	cfg Config
	log watermill.LoggerAdapter
	// epoch0 is the base of the member's monotonic clock (now).
	epoch0 time.Time

	// session is the current session and its local deadline, swapped as
	// one value so that a Valid check never mixes two sessions.
	session atomic.Pointer[sessionState]

	assignments chan *Lease
	poke        chan struct{}
	// beatNow asks for a heartbeat at once (another member joined).
	beatNow chan struct{}
	roster  *roster

	ctx       context.Context // every background request
	cancel    context.CancelFunc
	coordCtx  context.Context // the coordinator (claims and revokes)
	stopCoord context.CancelFunc
	beatCtx   context.Context // the heartbeat loop
	stopBeat  context.CancelFunc
	coordWG   sync.WaitGroup
	beatWG    sync.WaitGroup
	watchWG   sync.WaitGroup

	// inc is this incarnation: random per Join, in every record we write.
	inc string
	// done is closed when another instance joined with our ID after us.
	done chan struct{}

	mu       sync.Mutex
	joinedAt time.Duration
	// members is what we heard of the other members: ID -> incarnation.
	members map[string]map[string]*incarnation
	// ownJoinSeen: the watcher has read our own join record; a join of
	// our ID with another incarnation after it is a newer instance.
	ownJoinSeen bool
	// older are the other incarnations of our ID known to have joined
	// before us: their claims are ours to take over.
	older map[string]bool
	// syncs are the sync nonces waited for (see syncMembers).
	syncs map[string]chan struct{}
	// superseded says why this member stopped (nil while it runs).
	superseded error
	held       map[string]*Lease
	// live is the live set the last rebalance acted on, for the log
	// lines that say who joined, left or was declared dead.
	live     []string
	leaveMu  sync.Mutex
	leftOnce bool
}

// incarnation is what a member heard of one incarnation of another
// member: when it last heard of it, and whether it left (or a newer
// incarnation of its ID joined).
type incarnation struct {
	last time.Duration
	left bool
}

type sessionState struct {
	id       uint64
	deadline time.Duration // on the member's monotonic clock
}

// Join makes this process a member of cfg.Group on cfg.Topic: it finds
// (or starts) the group's current members log, announces itself, and
// starts heart-beating and claiming. ctx bounds the join only; the member
// runs until Leave.
func Join(ctx context.Context, cfg Config) (*Member, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := newMember(cfg)
	w, tail, err := m.announce(ctx)
	if err != nil {
		return nil, err
	}
	if err := m.start(ctx, w, tail); err != nil {
		return nil, err
	}
	m.log.Info("Joined consumer group", watermill.LogFields{"members_log": protocol.RedactURL(cfg.membersURL(w))})
	return m, nil
}

// newMember is a member of cfg's group that has not joined yet.
func newMember(cfg Config) *Member {
	m := &Member{
		cfg:         cfg,
		log:         cfg.Logger.With(watermill.LogFields{"group": cfg.Group, "topic": cfg.Topic, "member": cfg.MemberID}),
		epoch0:      time.Now(),
		assignments: make(chan *Lease, 2*len(cfg.Streams)),
		poke:        make(chan struct{}, 1),
		beatNow:     make(chan struct{}, 1),
		inc:         uuid.NewString(),
		done:        make(chan struct{}),
		members:     make(map[string]map[string]*incarnation),
		older:       make(map[string]bool),
		syncs:       make(map[string]chan struct{}),
		held:        make(map[string]*Lease),
	}
	m.log = m.log.With(watermill.LogFields{"incarnation": m.inc})
	m.roster = &roster{cfg: cfg, log: m.log}
	m.session.Store(&sessionState{})
	return m
}

// announce appends the member's join record to the group's current
// members log, and returns that log and the offset to watch it from.
func (m *Member) announce(ctx context.Context) (int64, string, error) {
	cfg := m.cfg
	w, err := m.roster.open(ctx)
	if err != nil {
		return 0, "", fmt.Errorf("join group %q: members log: %w", cfg.Group, err)
	}
	// Watch from the tail as it is before our join record, not from
	// "now" at the first read, which could miss a record appended in
	// between.
	tail, _, err := cfg.Client.Tail(ctx, cfg.membersURL(w))
	if err != nil {
		return 0, "", fmt.Errorf("join group %q: %w", cfg.Group, err)
	}
	t0 := m.now()
	if err := m.roster.append(ctx, memberRecord{Member: cfg.MemberID, Inc: m.inc, Kind: kindJoin}); err != nil {
		return 0, "", fmt.Errorf("join group %q: %w", cfg.Group, err)
	}
	if moved := m.roster.current(); moved != w {
		// The group moved to the next log between our look and our
		// join: read that one from its start.
		w, tail = moved, reader.OffsetBeginning
	}
	m.extend(t0)
	m.joinedAt = t0
	return w, tail, nil
}

// start runs the member's goroutines: the watch of members log w from
// tail (waited for until it reads), the heartbeat and the coordination.
func (m *Member) start(ctx context.Context, w int64, tail string) error {
	m.ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	m.coordCtx, m.stopCoord = context.WithCancel(m.ctx)
	m.beatCtx, m.stopBeat = context.WithCancel(m.ctx)
	watchReady := make(chan error, 1)
	m.watchWG.Add(1)
	go func() { defer m.watchWG.Done(); m.watch(w, tail, watchReady) }()
	if err := <-watchReady; err != nil {
		m.cancel()
		m.watchWG.Wait()
		return fmt.Errorf("watch group %q: %w", m.cfg.Group, err)
	}
	m.beatWG.Add(1)
	go func() { defer m.beatWG.Done(); m.heartbeat() }()
	m.coordWG.Add(1)
	go func() { defer m.coordWG.Done(); m.coordinate() }()
	return nil
}

// ID is the member's ID.
func (m *Member) ID() string { return m.cfg.MemberID }

// Done is closed when this member stopped taking part in the group because
// another instance joined it with the same MemberID after it (the newer
// instance takes the streams over): every lease is lost, nothing more is
// claimed. Err says why. Leave must still be called.
func (m *Member) Done() <-chan struct{} { return m.done }

// Err is why the member stopped (see Done): an error matching
// ErrSuperseded; nil while it runs.
func (m *Member) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.superseded
}

// Assignments delivers a Lease for each stream this member comes to own.
// It is closed by Leave.
func (m *Member) Assignments() <-chan *Lease { return m.assignments }

// now is the member's monotonic clock.
func (m *Member) now() time.Duration { return time.Since(m.epoch0) }

// sessionValid reports whether session id is current and before its
// local deadline.
func (m *Member) sessionValid(id uint64) bool {
	s := m.session.Load()
	return s.id == id && m.now() < s.deadline
}

// extend moves the deadline after a heartbeat sent at t0 was accepted.
// The others saw it no sooner than t0 and wait SessionTimeout after
// that, so our deadline (t0 + SessionTimeout - Margin) always comes first.
func (m *Member) extend(t0 time.Duration) {
	for {
		old := m.session.Load()
		next := &sessionState{id: old.id, deadline: t0 + m.cfg.SessionTimeout - m.cfg.Margin}
		if next.deadline <= old.deadline || m.session.CompareAndSwap(old, next) {
			return
		}
	}
}

// expireIfPast starts a new session when the deadline has passed, so that
// no lease of the old one is ever valid again, and ends those leases.
func (m *Member) expireIfPast() {
	old := m.session.Load()
	if m.now() < old.deadline {
		return
	}
	if !m.session.CompareAndSwap(old, &sessionState{id: old.id + 1, deadline: old.deadline}) {
		return
	}
	m.mu.Lock()
	var lost []*Lease
	for _, l := range m.held {
		if l.session == old.id {
			lost = append(lost, l)
		}
	}
	m.mu.Unlock()
	for _, l := range lost {
		m.log.Info("Consumer group session expired, dropping the stream", l.fields())
		l.lose(reasonExpired)
	}
}

// Leave hands every stream over and leaves the group: it revokes each
// lease, waits for its consumer to Release it (for what is left of ctx
// but a reserve, see releaseGrace), releases what is left with the last
// stored position, stops heart-beating and tells the others. ctx must still be live: use a fresh one with a
// timeout when shutting down after a cancellation. Leave is idempotent.
func (m *Member) Leave(ctx context.Context) error {
	m.leaveMu.Lock()
	defer m.leaveMu.Unlock()
	if m.leftOnce {
		return nil
	}
	m.leftOnce = true
	m.stopCoord()
	m.coordWG.Wait()
	close(m.assignments)

	m.mu.Lock()
	leases := make([]*Lease, 0, len(m.held))
	for _, l := range m.held {
		leases = append(leases, l)
	}
	m.mu.Unlock()
	m.log.Debug("Leaving consumer group", watermill.LogFields{"streams": len(leases)})
	for _, l := range leases {
		l.revoke()
	}
	var errs []error
	grace, cancel := releaseGrace(ctx)
	defer cancel()
	for _, l := range leases {
		select {
		case <-l.ended:
		case <-grace.Done():
		}
		if err := l.Release(ctx, nil); err != nil && !errors.Is(err, ErrFenced) {
			errs = append(errs, err)
		}
		l.lose(reasonLeft)
	}
	m.stopBeat()
	m.beatWG.Wait()
	// A superseded member does not announce a leave: its ID lives on in
	// the newer instance (a member of an earlier version, which does not
	// tell incarnations apart, would take the ID for gone).
	if m.Err() == nil {
		if err := m.roster.append(ctx, memberRecord{Member: m.cfg.MemberID, Inc: m.inc, Kind: kindLeave}); err != nil {
			errs = append(errs, fmt.Errorf("announce leave: %w", err))
		}
	}
	m.cancel()
	m.watchWG.Wait()
	m.log.Info("Left consumer group", nil)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("leave group %q: %w", m.cfg.Group, err)
	}
	return nil
}

// releaseGrace bounds the wait for consumers to release their leases:
// what is left of ctx but a reserve (half of it, at most 5 s) for the
// forced releases after it and the leave record.
func releaseGrace(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok {
		reserve := min(time.Until(d)/2, 5*time.Second)
		return context.WithDeadline(ctx, d.Add(-reserve))
	}
	return context.WithCancel(ctx)
}

// forget drops an ended lease.
func (m *Member) forget(l *Lease) {
	m.mu.Lock()
	if m.held[l.stream] == l {
		delete(m.held, l.stream)
	}
	m.mu.Unlock()
	m.wake()
}

// released tells the others a stream is free, so its next owner claims
// it without waiting for a heartbeat.
func (m *Member) released(ctx context.Context, l *Lease) {
	m.log.Info("Released consumer group stream", l.fields())
	if err := m.roster.append(ctx, memberRecord{Member: m.cfg.MemberID, Inc: m.inc, Kind: kindRelease, Stream: l.stream}); err != nil {
		m.log.Debug("Could not announce a release; the next heartbeat will do", watermill.LogFields{"err": err})
	}
}

func (m *Member) wake() {
	select {
	case m.poke <- struct{}{}:
	default:
	}
}

// supersede stops this member for good: a newer instance joined with its
// ID (inc). Every lease is lost, nothing more is claimed or heart-beaten;
// the newer instance claims the streams at their next epoch, so at most
// what this member has in hand is delivered again.
func (m *Member) supersede(inc string) {
	m.mu.Lock()
	if m.superseded != nil {
		m.mu.Unlock()
		return
	}
	m.superseded = fmt.Errorf("%w: member ID %q of group %q on topic %q (incarnation %s; the newer is %s)",
		ErrSuperseded, m.cfg.MemberID, m.cfg.Group, m.cfg.Topic, m.inc, incName(inc))
	lost := make([]*Lease, 0, len(m.held))
	for _, l := range m.held {
		lost = append(lost, l)
	}
	m.mu.Unlock()
	close(m.done)
	m.stopBeat()
	m.log.Info("Another instance joined the consumer group with this member ID; this one stops", watermill.LogFields{"newer_incarnation": incName(inc)})
	for _, l := range lost {
		l.lose(reasonSuperseded)
	}
}

// incName names an incarnation in messages: "" is one of a member of an
// earlier version.
func incName(inc string) string {
	if inc == "" {
		return "unknown"
	}
	return inc
}
