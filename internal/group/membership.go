package group

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/ThreeDotsLabs/watermill"

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
		status, _, _, err := post(m.beatCtx, m.cfg.Client, m.cfg.membersURL(), memberRecord{Member: m.cfg.MemberID, Kind: kindBeat}, -1, 0)
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

func (m *Member) observe(recs []memberRecord) {
	now := m.now()
	m.mu.Lock()
	for _, r := range recs {
		if r.Member == "" {
			continue
		}
		switch r.Kind {
		case kindLeave:
			m.left[r.Member] = now
			delete(m.seen, r.Member)
		case kindJoin:
			delete(m.left, r.Member)
			m.seen[r.Member] = now
		default:
			// A heartbeat after a leave does not bring a member back:
			// only a join does.
			if _, gone := m.left[r.Member]; !gone {
				m.seen[r.Member] = now
			}
		}
	}
	// Forget members long gone, so that the map does not grow with every
	// member that ever lived (a dead one is dead after SessionTimeout).
	for _, times := range []map[string]time.Duration{m.seen, m.left} {
		for id, last := range times {
			if now-last > 10*m.cfg.SessionTimeout {
				delete(times, id)
			}
		}
	}
	m.mu.Unlock()
	m.wake()
}

// aliveLocked reports whether member id counts as alive: not left, and
// heard of within SessionTimeout. A member never heard of counts as heard
// of at our join, so it expires SessionTimeout after it.
func (m *Member) aliveLocked(id string, now time.Duration) bool {
	if id == m.cfg.MemberID {
		return true
	}
	if _, gone := m.left[id]; gone {
		return false
	}
	last, ok := m.seen[id]
	if !ok {
		last = m.joinedAt
	}
	return now-last < m.cfg.SessionTimeout
}

// liveLocked is the sorted live member set, this member included.
func (m *Member) liveLocked(now time.Duration) []string {
	live := []string{m.cfg.MemberID}
	for id := range m.seen {
		if id != m.cfg.MemberID && m.aliveLocked(id, now) {
			live = append(live, id)
		}
	}
	slices.Sort(live)
	return live
}
