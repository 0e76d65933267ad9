package group

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/google/uuid"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// coordinate reacts to every change of the members stream and to the
// passing of time (expiries): it revokes the streams the assignment took
// away and claims the ones it gave.
func (m *Member) coordinate() {
	t := time.NewTicker(max(m.cfg.HeartbeatInterval/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-m.coordCtx.Done():
			return
		case <-m.poke:
		case <-t.C:
		}
		m.expireIfPast()
		m.rebalance(m.coordCtx)
	}
}

// warmup is how long a new member only listens: within it every live
// member heartbeats once, so the assignment it then computes is the
// others'.
func (m *Member) warmup() time.Duration { return m.cfg.HeartbeatInterval * 3 / 2 }

func (m *Member) rebalance(ctx context.Context) {
	now := m.now()
	if now-m.joinedAt < m.warmup() {
		return
	}
	m.mu.Lock()
	if m.superseded != nil {
		m.mu.Unlock()
		return
	}
	live := m.liveLocked(now)
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
	for _, s := range claim {
		if ctx.Err() != nil {
			return
		}
		l := m.tryClaim(ctx, s)
		if l == nil {
			continue
		}
		select {
		case m.assignments <- l:
		case <-ctx.Done():
			l.lose(reasonLeft)
			return
		}
	}
}

// takeOver finishes a claim at epoch: now that no record of an earlier
// epoch can land on the root, it closes the previous owner's position log
// (its next position write gets 409 Stream-Closed) and reads the last
// position there, which is where this owner starts; then it creates its
// own log.
func (m *Member) takeOver(ctx context.Context, s string, epoch int64, claimed json.RawMessage) (json.RawMessage, error) {
	c, policy := m.cfg.Client, m.cfg.RetryPolicy
	start := claimed
	if epoch > 0 {
		recs, err := readOwnerRecords(ctx, c, policy, m.cfg.ownerURL(s))
		if err != nil {
			return nil, err
		}
		if prev, ok := currentBefore(recs, epoch); ok {
			start = prev.Position
			if !prev.Released {
				log := m.cfg.logURL(s, prev.Epoch, prev.Log)
				if err := closeLog(ctx, c, policy, log); err != nil {
					return nil, err
				}
				last, err := lastPosition(ctx, c, policy, log)
				if err != nil {
					return nil, err
				}
				if last != nil {
					start = last
				}
			}
		}
	}
	if err := c.CreateStream(ctx, m.cfg.logURL(s, epoch, 0), protocol.StreamOptions{ContentType: protocol.ContentTypeJSON}); err != nil {
		return nil, err
	}
	return start, nil
}

// tryClaim takes stream s if it is free: never owned, released, owned by
// an incarnation of a member this one has not heard of for SessionTimeout
// (or that left), by this member's own earlier claim, or by an instance of
// its own ID that joined before it (an earlier incarnation of itself). The claim is a fenced write at the next
// epoch, seq 0, carrying the stored position; from then on every write of
// an earlier owner is refused by the server (403).
func (m *Member) tryClaim(ctx context.Context, s string) *Lease {
	session := m.session.Load()
	if m.now() >= session.deadline {
		return nil // no claims on an expired session
	}
	url := m.cfg.ownerURL(s)
	recs, err := readOwnerRecords(ctx, m.cfg.Client, m.cfg.RetryPolicy, url)
	if err != nil {
		m.log.Info("Reading a stream's ownership failed", watermill.LogFields{"stream": s, "err": err})
		return nil
	}
	cur, owned := current(recs)
	epoch := int64(0)
	if owned {
		free := cur.Released || cur.Owner == m.cfg.MemberID && cur.Inc == m.inc
		switch {
		case free:
		case cur.Owner == m.cfg.MemberID:
			free = m.olderIncarnation(ctx, cur.Inc)
		default:
			m.mu.Lock()
			free = !m.aliveLocked(cur.Owner, cur.Inc, m.now())
			m.mu.Unlock()
		}
		if !free {
			return nil
		}
		epoch = cur.Epoch + 1
	} else if err := m.cfg.Client.CreateStream(ctx, url, protocol.StreamOptions{ContentType: protocol.ContentTypeJSON}); err != nil {
		m.log.Info("Creating a stream's ownership record failed", watermill.LogFields{"stream": s, "err": err})
		return nil
	}
	if epoch > protocol.MaxInteger {
		m.log.Error("Ownership epoch exhausted", nil, watermill.LogFields{"stream": s})
		return nil
	}
	rec := ownerRecord{Owner: m.cfg.MemberID, Claim: uuid.NewString(), Inc: m.inc, Epoch: epoch, Position: cur.Position}
	o, reason, err := fencedPost(ctx, m.cfg.Client, m.cfg.RetryPolicy, url, rec, 0)
	switch o {
	case written:
	case duplicate, fenced:
		// A rival claimed the same epoch first (204), or a later one
		// (403): the stream says who won.
		recs, err := readOwnerRecords(ctx, m.cfg.Client, m.cfg.RetryPolicy, url)
		if err != nil {
			return nil
		}
		won, ok := claimOf(recs, epoch)
		if !ok || won.Claim != rec.Claim {
			m.log.Debug("Lost a claim race", watermill.LogFields{"stream": s, "epoch": epoch, "reason": reason})
			return nil
		}
	default:
		m.log.Info("Claiming a stream failed", watermill.LogFields{"stream": s, "err": err, "reason": reason})
		return nil
	}
	start, err := m.takeOver(ctx, s, epoch, cur.Position)
	if err != nil {
		// The claim holds; the next round claims again at a newer epoch
		// (our own earlier claim) and finishes the take-over.
		m.log.Info("Taking a claimed stream over failed", watermill.LogFields{"stream": s, "err": err})
		return nil
	}
	l := &Lease{
		m: m, stream: s, url: url, epoch: epoch, claim: rec.Claim, session: session.id,
		start: start, last: start,
		done: make(chan struct{}), ended: make(chan struct{}), revoked: make(chan struct{}),
	}
	if start != nil && !bytes.Equal(start, cur.Position) {
		// Keep the position the take-over found in our own log, so that a
		// crash before our first Store does not send the next owner back.
		l.mu.Lock()
		err := l.postLocked(ctx, m.cfg.logURL(s, epoch, 0), ownerRecord{Position: start}, 0)
		if err == nil {
			l.logWrites = 1
		}
		l.mu.Unlock()
		if err != nil {
			m.log.Info("Recording a taken-over position failed", watermill.LogFields{"stream": s, "err": err})
			return nil
		}
	}
	m.mu.Lock()
	superseded := m.superseded != nil
	if !superseded {
		m.held[s] = l
	}
	m.mu.Unlock()
	if superseded {
		// A newer instance with our ID joined meanwhile: it claims the
		// stream at the next epoch.
		l.lose(reasonSuperseded)
		return nil
	}
	prev := "none"
	if owned {
		prev = cur.Owner
	}
	m.log.Info("Claimed consumer group stream", l.fields().Add(watermill.LogFields{"previous_owner": prev}))
	return l
}
