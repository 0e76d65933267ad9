package group

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/google/uuid"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// tryClaim takes stream s if it is free (see claimable). The claim is a
// fenced write at the next epoch, seq 0, carrying the stored position;
// from then on every root write of an earlier owner is refused by the
// server (403). The take-over then seals the previous owner's position
// logs and finds where it stopped.
func (m *Member) tryClaim(ctx context.Context, s string) *Lease {
	session := m.session.Load()
	if m.now() >= session.deadline {
		return nil // no claims on an expired session
	}
	url := m.cfg.ownerURL(s)
	cur, owned, err := m.readRoot(ctx, s)
	if err != nil {
		m.log.Info("Reading a stream's ownership failed", watermill.LogFields{"stream": s, "err": err})
		return nil
	}
	epoch := int64(0)
	if owned {
		if !m.claimable(ctx, cur) {
			return nil
		}
		epoch = cur.Epoch + 1
	} else if err := m.cfg.Client.CreateStream(ctx, url, protocol.StreamOptions{ContentType: protocol.ContentTypeJSON}); err != nil {
		m.log.Info("Creating a stream's ownership record failed", watermill.LogFields{"stream": s, "err": err})
		return nil
	}
	rec := ownerRecord{Owner: m.cfg.MemberID, Claim: uuid.NewString(), Inc: m.inc, Epoch: epoch, Position: cur.Position}
	if !m.wonClaim(ctx, s, rec) {
		return nil
	}
	start, err := m.takeOver(ctx, s, epoch, cur.Position)
	if err != nil {
		// The claim holds; the next round claims again at a newer epoch
		// (our own earlier claim) and finishes the take-over.
		m.log.Info("Taking a claimed stream over failed", watermill.LogFields{"stream": s, "err": err})
		return nil
	}
	l := newLease(m, s, epoch, rec.Claim, session.id, start)
	if err := l.recordStart(ctx, cur.Position); err != nil {
		m.log.Info("Recording a taken-over position failed", watermill.LogFields{"stream": s, "err": err})
		return nil
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

// readRoot reads a stream's ownership root and returns its current
// record. Records that do not parse or are out of range are logged at
// Error and skipped: they never stall the stream.
func (m *Member) readRoot(ctx context.Context, s string) (ownerRecord, bool, error) {
	url := m.cfg.ownerURL(s)
	recs, bad, _, err := readRecords(ctx, m.cfg.Client, m.cfg.RetryPolicy, url, ownerChecker())
	if err != nil {
		return ownerRecord{}, false, err
	}
	m.logBad(url, bad)
	cur, owned := current(recs)
	return cur, owned, nil
}

func (m *Member) logBad(url string, bad []badRecord) {
	for _, b := range bad {
		m.log.Error("Skipping a record of a consumer group stream that is not one the group writes", nil,
			watermill.LogFields{"coordination_stream": protocol.RedactURL(url), "record": b.String()})
	}
}

// claimable says whether the current record leaves the stream free to
// claim: released, our own earlier claim, that of an older instance of our
// own ID, or that of an incarnation of a member this one has not heard of
// for SessionTimeout (or that left).
func (m *Member) claimable(ctx context.Context, cur ownerRecord) bool {
	switch {
	case cur.Released || cur.Owner == m.cfg.MemberID && cur.Inc == m.inc:
		return true
	case cur.Owner == m.cfg.MemberID:
		return m.olderIncarnation(ctx, cur.Inc)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.aliveLocked(cur.Owner, cur.Inc, m.now())
}

// wonClaim writes claim rec and says whether it holds the epoch. Two
// members racing for one epoch both send seq 0: one gets 200, the other a
// duplicate 204, and both read the root back to see whose claim holds.
func (m *Member) wonClaim(ctx context.Context, s string, rec ownerRecord) bool {
	url := m.cfg.ownerURL(s)
	o, reason, err := fencedPost(ctx, m.cfg.Client, m.cfg.RetryPolicy, url, rec, 0, false)
	switch o {
	case written:
		return true
	case duplicate, fenced:
		// A rival claimed the same epoch first (204), or a later one
		// (403): the stream says who won.
		recs, _, _, err := readRecords(ctx, m.cfg.Client, m.cfg.RetryPolicy, url, ownerChecker())
		if err != nil {
			return false
		}
		won, ok := claimOf(recs, rec.Epoch)
		if !ok || won.Claim != rec.Claim {
			m.log.Debug("Lost a claim race", watermill.LogFields{"stream": s, "epoch": rec.Epoch, "reason": reason})
			return false
		}
		return true
	}
	m.log.Info("Claiming a stream failed", watermill.LogFields{"stream": s, "err": err, "reason": reason})
	return false
}

// takeOver finishes a claim at epoch: now that no root record of an
// earlier epoch can land, it seals the previous owner's position logs (its
// next position write, or the creation of its next log, is refused) and
// reads the last position there, which is where this owner starts; then
// it creates its own first log.
func (m *Member) takeOver(ctx context.Context, s string, epoch int64, claimed json.RawMessage) (json.RawMessage, error) {
	start := claimed
	if epoch > 0 {
		recs, _, _, err := readRecords(ctx, m.cfg.Client, m.cfg.RetryPolicy, m.cfg.ownerURL(s), ownerChecker())
		if err != nil {
			return nil, err
		}
		if prev, ok := currentBefore(recs, epoch); ok {
			start = prev.Position
			if !prev.Released {
				last, err := m.sealLogs(ctx, s, prev)
				if err != nil {
					return nil, err
				}
				if last != nil {
					start = last
				}
			}
		}
	}
	if o, reason, err := createLog(ctx, m.cfg.Client, m.cfg.RetryPolicy, m.cfg.logURL(s, epoch, 0)); o != written {
		return nil, outcomeError(fmt.Sprintf("create position log of stream %q", s), reason, err)
	}
	return start, nil
}

// errSealLoop ends a take-over that keeps finding new logs (a writer that
// will not stop): the claim is tried again later.
var errSealLoop = errors.New("the previous owner's position logs kept growing")

// sealLogs closes the previous owner's position logs from the last one
// its root record names, and returns the last position in them (nil if
// none). The logs of an epoch are a chain: a log is closed with a record
// naming the next before the next is created, and the root names one
// every defaultHintEvery rotations (logs before it are deleted). So the
// last log is the highest that exists after the hint; it is closed, and
// the one after it is created sealed (closed, empty), so that the former
// owner can neither write the last log nor start the next. If the former
// owner created the next one first, that one is closed in turn.
func (m *Member) sealLogs(ctx context.Context, s string, prev ownerRecord) (json.RawMessage, error) {
	last, err := m.lastLog(ctx, s, prev.Epoch, prev.Log)
	if err != nil {
		return nil, err
	}
	for range 64 {
		if last >= prev.Log {
			if err := closeStream(ctx, m.cfg.Client, m.cfg.RetryPolicy, m.cfg.logURL(s, prev.Epoch, last)); err != nil {
				return nil, err
			}
		}
		o, reason, err := sealLog(ctx, m.cfg.Client, m.cfg.RetryPolicy, m.cfg.logURL(s, prev.Epoch, last+1))
		switch o {
		case written:
			return m.lastPosition(ctx, s, prev, last)
		case fenced: // it exists open: the former owner just started it
			last++
			continue
		}
		return nil, outcomeError(fmt.Sprintf("seal position log %d of stream %q", last+1, s), reason, err)
	}
	return nil, errSealLoop
}

// lastLog finds the highest position log of epoch from log from (which
// the root names, so it and every log after it up to the last exist): a
// few HEADs, doubling the step, then halving it. It returns from-1 when
// log from does not exist (the owner never created it).
func (m *Member) lastLog(ctx context.Context, s string, epoch, from int64) (int64, error) {
	exists := func(n int64) (bool, error) {
		_, ok, err := m.cfg.Client.Tail(ctx, m.cfg.logURL(s, epoch, n))
		return ok, err
	}
	ok, err := exists(from)
	if err != nil || !ok {
		return from - 1, err
	}
	lo, step := from, int64(1)
	for {
		ok, err := exists(lo + step)
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
		lo += step
		step *= 2
	}
	hi := lo + step // does not exist
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := exists(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// lastPosition is the last position the previous owner stored: in its
// last log, or, if that one holds none (a crash right after a rotation),
// the record that closed the log before, or the root's.
func (m *Member) lastPosition(ctx context.Context, s string, prev ownerRecord, last int64) (json.RawMessage, error) {
	for n := last; n >= max(prev.Log, last-1) && n >= 0; n-- {
		url := m.cfg.logURL(s, prev.Epoch, n)
		recs, bad, _, err := readRecords(ctx, m.cfg.Client, m.cfg.RetryPolicy, url, logChecker(prev.Epoch))
		if err != nil {
			return nil, err
		}
		m.logBad(url, bad)
		for i := len(recs) - 1; i >= 0; i-- {
			if recs[i].Position != nil {
				return recs[i].Position, nil
			}
		}
	}
	return prev.Position, nil
}

// outcomeError is the error of a write whose outcome the caller does not
// take: the transport's error, or the answer's reason.
func outcomeError(what, reason string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %s", what, reason)
}
