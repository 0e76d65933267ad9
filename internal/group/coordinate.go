package group

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// claimParallelism bounds the claims one rebalance makes at a time: a
// member joining an empty group of many partitions claims them all in a
// few round trips, not one after the other.
const claimParallelism = 4

// coordinate reacts to every change of the members log and to the
// passing of time (expiries): it revokes the streams the assignment took
// away and claims the ones it gave.
func (m *Member) coordinate() {
	t := time.NewTicker(max(m.cfg.HeartbeatInterval/4, 10*time.Millisecond))
	defer t.Stop()
	// settle fires when a member that has read its own join back has
	// waited settleDelay: it claims then, not at the next tick.
	settle := time.NewTimer(time.Hour)
	defer settle.Stop()
	for {
		select {
		case <-m.coordCtx.Done():
			return
		case <-m.poke:
		case <-t.C:
		case <-settle.C:
		}
		m.expireIfPast()
		if wait := m.rebalance(m.coordCtx); wait > 0 {
			settle.Reset(wait)
		}
	}
}

// settleDelay is how long a member waits after reading its own join back
// before it claims (see settledLocked): about a loopback or LAN round
// trip, in which members started at the same moment hear of each other.
// Measured with 3 members started at once on 8 streams: 50 ms cost every
// join 50 ms and moved nothing twice in 5 cold starts; 10 ms moved 1 and 4
// streams once more in 2 of 15 (a pause of about 60 ms each, no message
// twice); 0 did much the same as 10 ms. A join into a live group claims
// only what its owners hand over, whatever the delay.
func (m *Member) settleDelay() time.Duration {
	return min(m.cfg.HeartbeatInterval/4, 10*time.Millisecond)
}

// settled says whether this member has heard enough to act: it has read
// its own join back, and the other members had a moment to answer it
// (each heartbeats at once on a join). Until then it knows no one, and
// would claim free streams that belong to others by the assignment.
// Claiming too early is safe (claims are fenced), only wasteful: the
// stream moves on at once.
func (m *Member) settledLocked(now time.Duration) bool {
	return m.ownJoinSeen && now-m.joinedAt >= m.settleDelay()
}

// rebalance revokes and claims what the assignment says; before the
// member has settled it does nothing and returns how long until it will
// have (0: settled, or not to be waited for on a timer).
func (m *Member) rebalance(ctx context.Context) time.Duration {
	now := m.now()
	m.mu.Lock()
	if m.superseded != nil {
		m.mu.Unlock()
		return 0
	}
	if !m.settledLocked(now) {
		var wait time.Duration
		if m.ownJoinSeen {
			wait = m.joinedAt + m.settleDelay() - now
		}
		m.mu.Unlock()
		return max(wait, 0)
	}
	live := m.liveLocked(now)
	m.noteLiveLocked(live, now)
	mine := assign(m.cfg.Streams, live, m.cfg.MemberID)
	var revoke []*Lease
	var claim []string
	for s, l := range m.held {
		if !slices.Contains(mine, s) {
			revoke = append(revoke, l)
		}
	}
	for _, s := range mine {
		if _, ok := m.held[s]; !ok {
			claim = append(claim, s)
		}
	}
	m.mu.Unlock()
	for _, l := range revoke {
		select {
		case <-l.revoked:
		default:
			m.log.Info("Consumer group rebalance: handing a stream over", l.fields().Add(watermill.LogFields{"members": len(live)}))
			l.revoke()
		}
	}
	m.claimAll(ctx, claim)
	return 0
}

// claimAll tries to claim each stream, a few at a time, and hands every
// lease won to the consumer.
func (m *Member) claimAll(ctx context.Context, streams []string) {
	if len(streams) == 0 {
		return
	}
	won := make(chan *Lease, len(streams))
	sem := make(chan struct{}, claimParallelism)
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if l := m.tryClaim(ctx, s); l != nil {
				won <- l
			}
		}()
	}
	wg.Wait()
	close(won)
	for l := range won {
		select {
		case m.assignments <- l:
		case <-ctx.Done():
			l.lose(reasonLeft)
		}
	}
}

// noteLiveLocked logs how the live set changed since the last rebalance:
// who joined, who left, and who was declared dead (with how long it was
// silent).
func (m *Member) noteLiveLocked(live []string, now time.Duration) {
	if slices.Equal(live, m.live) {
		return
	}
	for _, id := range live {
		if !slices.Contains(m.live, id) && id != m.cfg.MemberID {
			m.log.Info("Consumer group member joined", watermill.LogFields{"other_member": id, "members": len(live)})
		}
	}
	for _, id := range m.live {
		if slices.Contains(live, id) {
			continue
		}
		left, silent := m.departedLocked(id, now)
		if left {
			m.log.Info("Consumer group member left", watermill.LogFields{"other_member": id, "members": len(live)})
			continue
		}
		m.log.Info("Consumer group member declared dead: no record of it within the session timeout; its streams move", watermill.LogFields{
			"other_member": id, "members": len(live), "silent_for": silent.Round(time.Millisecond).String(),
			"session_timeout": m.cfg.SessionTimeout.String(),
		})
	}
	m.live = live
}
