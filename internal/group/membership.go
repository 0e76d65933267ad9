package group

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/google/uuid"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
)

// heartbeat appends a heartbeat every HeartbeatInterval. Before each, a
// session whose deadline passed is ended (its leases lost), so a member
// resumed after a pause never extends a session the others gave up on.
func (m *Member) heartbeat() {
	t := time.NewTicker(m.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-m.beatCtx.Done():
			return
		case <-t.C:
		}
		m.expireIfPast()
		t0 := m.now()
		status, _, _, err := post(m.beatCtx, m.cfg.Client, m.cfg.membersURL(), memberRecord{Member: m.cfg.MemberID, Inc: m.inc, Kind: kindBeat}, -1, 0)
		if err == nil && status >= 200 && status < 300 {
			m.extend(t0)
			continue
		}
		if m.beatCtx.Err() == nil {
			m.log.Info("Consumer group heartbeat failed", watermill.LogFields{"err": err, "status": status})
		}
	}
}

// watch reads the members stream from the tail it had at our join (it
// never needs the history: every live member heartbeats within one
// interval) and records when each member was last heard of, on this
// member's own clock.
func (m *Member) watch(from string, ready chan<- error) {
	r, err := reader.New(reader.Config{URL: m.cfg.membersURL(), Offset: from, Client: m.cfg.Client, RetryPolicy: m.cfg.RetryPolicy})
	if err != nil {
		ready <- err
		return
	}
	defer r.Close()
	ready <- nil
	for {
		chunk, err := r.Next(m.ctx)
		if m.ctx.Err() != nil {
			return
		}
		if err != nil {
			// The reader already retried what may be retried; start again
			// from where it stood after a pause, never from the history.
			m.log.Info("Reading the consumer group members failed, retrying", watermill.LogFields{"err": err})
			if protocol.Sleep(m.ctx, m.cfg.HeartbeatInterval) != nil {
				return
			}
			continue
		}
		data, err := chunk.ReadData(reader.DefaultMaxBodyBytes)
		if err != nil {
			// A cut body costs one round of heartbeats, which come again.
			m.log.Info("Reading the consumer group members failed, retrying", watermill.LogFields{"err": err})
			continue
		}
		if len(data) > 0 {
			var recs []memberRecord
			if err := json.Unmarshal(data, &recs); err != nil {
				m.log.Error("Unreadable consumer group members record", err, nil)
				continue
			}
			m.observe(recs)
		}
		if chunk.Closed {
			m.log.Error("The consumer group members stream was closed; no more membership changes are seen", nil, nil)
			return
		}
	}
}

// observe takes in records of the members stream, in stream order. The
// state of another member is kept per incarnation: a leave or heartbeat of
// one incarnation of an ID never changes that of another, and a join of an
// ID ends its earlier incarnations (the newer instance wins). A join of our
// own ID by another incarnation after our own join means that we are the
// older instance: we stop (supersede).
func (m *Member) observe(recs []memberRecord) {
	now := m.now()
	newer, found := "", false
	m.mu.Lock()
	for _, r := range recs {
		if r.Member == "" {
			continue
		}
		if r.Member == m.cfg.MemberID {
			switch {
			case r.Inc == m.inc:
				if r.Kind == kindJoin {
					m.ownJoinSeen = true
				}
				if ch, ok := m.syncs[r.Sync]; ok && r.Sync != "" {
					close(ch)
					delete(m.syncs, r.Sync)
				}
			case r.Kind != kindJoin:
				// Records of another instance with our ID: we count our ID
				// as alive anyway, and tell older from newer by joins.
			case m.ownJoinSeen:
				if !found {
					newer, found = r.Inc, true
				}
			default:
				m.older[r.Inc] = true // it joined before us
			}
			continue
		}
		incs := m.members[r.Member]
		if incs == nil {
			incs = make(map[string]*incarnation)
			m.members[r.Member] = incs
		}
		st := incs[r.Inc]
		switch r.Kind {
		case kindJoin:
			for inc, other := range incs {
				if inc != r.Inc && !other.left {
					other.left, other.last = true, now
				}
			}
			incs[r.Inc] = &incarnation{last: now}
		case kindLeave:
			if st == nil {
				incs[r.Inc] = &incarnation{last: now, left: true}
			} else {
				st.left, st.last = true, now
			}
		default:
			// A heartbeat after a leave does not bring an incarnation
			// back: only a join does.
			if st == nil {
				incs[r.Inc] = &incarnation{last: now}
			} else if !st.left {
				st.last = now
			}
		}
	}
	// Forget incarnations long gone, so that the map does not grow with
	// every member that ever lived (a dead one is dead after
	// SessionTimeout).
	for id, incs := range m.members {
		for inc, st := range incs {
			if now-st.last > 10*m.cfg.SessionTimeout {
				delete(incs, inc)
			}
		}
		if len(incs) == 0 {
			delete(m.members, id)
		}
	}
	m.mu.Unlock()
	if found {
		m.supersede(newer)
	}
	m.wake()
}

// aliveLocked reports whether incarnation inc of member id counts as alive:
// not left, and heard of within SessionTimeout. An incarnation never heard
// of counts as heard of at our join, so it expires SessionTimeout after it.
func (m *Member) aliveLocked(id, inc string, now time.Duration) bool {
	if id == m.cfg.MemberID {
		return true
	}
	if st, ok := m.members[id][inc]; ok {
		return !st.left && now-st.last < m.cfg.SessionTimeout
	}
	return now-m.joinedAt < m.cfg.SessionTimeout
}

// liveLocked is the sorted live member set, this member included: the IDs
// with an incarnation alive.
func (m *Member) liveLocked(now time.Duration) []string {
	live := []string{m.cfg.MemberID}
	for id, incs := range m.members {
		if id == m.cfg.MemberID {
			continue
		}
		for _, st := range incs {
			if !st.left && now-st.last < m.cfg.SessionTimeout {
				live = append(live, id)
				break
			}
		}
	}
	slices.Sort(live)
	return live
}

// syncMembers returns once the watcher has read every members record
// appended before the call: it appends a heartbeat with a nonce and waits
// to read it back.
func (m *Member) syncMembers(ctx context.Context) error {
	nonce := uuid.NewString()
	ch := make(chan struct{})
	m.mu.Lock()
	m.syncs[nonce] = ch
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.syncs, nonce)
		m.mu.Unlock()
	}()
	if err := appendBestEffort(ctx, m.cfg.Client, m.cfg.RetryPolicy, m.cfg.membersURL(), memberRecord{Member: m.cfg.MemberID, Inc: m.inc, Kind: kindBeat, Sync: nonce}); err != nil {
		return err
	}
	timeout := time.NewTimer(m.cfg.SessionTimeout)
	defer timeout.Stop()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-m.ctx.Done():
		return m.ctx.Err()
	case <-timeout.C:
		return fmt.Errorf("the members stream did not show our own record within %v", m.cfg.SessionTimeout)
	}
}

// olderIncarnation reports whether inc, another incarnation of our own ID
// that owns a stream, joined before us, so that its streams are ours. Its
// join (if it ever joined after ours) came before its claim, which we have
// read: once the watcher has read everything appended until now, it has
// seen that join, and we have stopped.
func (m *Member) olderIncarnation(ctx context.Context, inc string) bool {
	m.mu.Lock()
	known := m.older[inc]
	m.mu.Unlock()
	if known {
		return true
	}
	if err := m.syncMembers(ctx); err != nil {
		m.log.Info("Could not read the members stream up to now; not claiming from another instance of this member ID yet", watermill.LogFields{"err": err})
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.superseded != nil {
		return false
	}
	m.older[inc] = true
	return true
}
