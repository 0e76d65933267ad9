package group

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/google/uuid"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
)

// unreachableLogEvery bounds how often a member that cannot reach the
// server says so: at once, then at most this often.
const unreachableLogEvery = 30 * time.Second

// heartbeat appends a heartbeat every HeartbeatInterval, or at once when
// another member joined (so that it learns the live set within a round
// trip instead of an interval). Before each, a session whose deadline
// passed is ended (its leases lost), so a member resumed after a pause
// never extends a session the others gave up on; and a members log whose
// window the server's clock has left is rotated.
func (m *Member) heartbeat() {
	t := time.NewTicker(m.cfg.HeartbeatInterval)
	defer t.Stop()
	var failingSince time.Time
	var lastLogged time.Time
	for {
		select {
		case <-m.beatCtx.Done():
			return
		case <-t.C:
		case <-m.beatNow:
		}
		m.expireIfPast()
		if err := m.roster.rotate(m.beatCtx, m.cfg.MemberID, m.inc); err != nil && m.beatCtx.Err() == nil {
			m.log.Debug("Could not start the next members log; trying again at the next heartbeat", watermill.LogFields{"err": err})
		}
		t0 := m.now()
		err := m.roster.append(m.beatCtx, memberRecord{Member: m.cfg.MemberID, Inc: m.inc, Kind: kindBeat})
		if m.beatCtx.Err() != nil {
			return
		}
		if err == nil {
			m.extend(t0)
			if !failingSince.IsZero() {
				m.log.Info("Consumer group heartbeats reach the server again", watermill.LogFields{"failed_for": time.Since(failingSince).Round(time.Millisecond).String()})
				failingSince = time.Time{}
			}
			continue
		}
		if failingSince.IsZero() {
			failingSince = time.Now()
		}
		if time.Since(lastLogged) >= unreachableLogEvery {
			lastLogged = time.Now()
			m.log.Error("Consumer group heartbeat failed; this member's streams are handed to others if it lasts SessionTimeout", err,
				watermill.LogFields{"members_log": protocol.RedactURL(m.cfg.membersURL(m.roster.current())), "session_timeout": m.cfg.SessionTimeout.String()})
		}
	}
}

// watch reads the members logs from the tail the current one had at our
// join (it never needs the history: every live member heartbeats within
// one interval) and records when each member was last heard of, on this
// member's own clock. At the end of a log it goes on with the log its
// last record names, from the start.
func (m *Member) watch(w int64, from string, ready chan<- error) {
	ready <- nil
	for m.ctx.Err() == nil {
		next, ok := m.watchLog(w, from)
		if !ok {
			return
		}
		w, from = next, reader.OffsetBeginning
	}
}

// watchLog reads members log w from offset until it ends, and returns the
// log to read next; false when the member is leaving.
func (m *Member) watchLog(w int64, from string) (int64, bool) {
	url := m.cfg.membersURL(w)
	r, err := reader.New(reader.Config{URL: url, Offset: from, Client: m.cfg.Client, RetryPolicy: m.cfg.RetryPolicy})
	if err != nil {
		m.log.Error("Cannot read the consumer group's members log", err, watermill.LogFields{"members_log": protocol.RedactURL(url)})
		return 0, false
	}
	defer r.Close()
	next := int64(-1)
	for {
		chunk, err := r.Next(m.ctx)
		if m.ctx.Err() != nil {
			return 0, false
		}
		if errors.Is(err, protocol.ErrStreamNotFound) {
			return m.logGone(w)
		}
		if err != nil {
			// The reader already retried what may be retried; start again
			// from where it stood after a pause, never from the history.
			m.log.Info("Reading the consumer group members failed, retrying", watermill.LogFields{"err": err})
			if protocol.Sleep(m.ctx, m.cfg.HeartbeatInterval) != nil {
				return 0, false
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
			next = m.takeRecords(url, data, w, next)
		}
		if chunk.Closed {
			if next < 0 {
				next = max(w+1, m.roster.window())
			}
			return next, true
		}
	}
}

// logGone goes on after members log w was not found: a server that lost
// its data, a log deleted after we stopped reading it, or the log a closed
// one led to that its writers have not created yet (a log closed by hand,
// with no next record). The log to read next is w itself when it is the
// server's clock's or later, else the server's clock's: created if need
// be, never passed over, for the members that append go to the same log
// (see roster.follow). False when the member is leaving.
func (m *Member) logGone(w int64) (int64, bool) {
	w2 := max(w, m.roster.window())
	if _, err := m.roster.create(m.ctx, w2); err != nil && !errors.Is(err, protocol.ErrStreamClosed) {
		m.log.Info("Could not start the members log again; retrying", watermill.LogFields{"err": err})
		if protocol.Sleep(m.ctx, m.cfg.HeartbeatInterval) != nil {
			return 0, false
		}
	}
	return w2, true
}

// takeRecords decodes a chunk of members log w (at url), skipping what is
// not a member record, observes the records, and returns the log to read
// next as far as the chunk tells (next, unless it names a later one).
func (m *Member) takeRecords(url string, data []byte, w, next int64) int64 {
	recs, bad := decodeEach(data, memberRecord.problem)
	for _, b := range bad {
		m.log.Error("Skipping a record of the consumer group's members log that is not a member record", nil,
			watermill.LogFields{"members_log": protocol.RedactURL(url), "record": b.String()})
	}
	for _, rec := range recs {
		switch {
		case m.roster.names(rec, w):
			next = rec.Window
		case rec.Kind == kindNext && rec.Window > m.roster.window()+1:
			m.log.Error("Skipping a record of the consumer group's members log that names a log ahead of the server's clock", nil,
				watermill.LogFields{"members_log": protocol.RedactURL(url), "window": rec.Window, "server_window": m.roster.window()})
		}
	}
	m.observe(recs)
	return next
}

// observe takes in records of the members log, in stream order. The
// state of another member is kept per incarnation: a leave or heartbeat of
// one incarnation of an ID never changes that of another, and a join of an
// ID ends its earlier incarnations (the newer instance wins). A join of our
// own ID by another incarnation after our own join means that we are the
// older instance: we stop (supersede). A join of another member makes us
// heartbeat at once, so that it learns of us within a round trip.
func (m *Member) observe(recs []memberRecord) {
	now := m.now()
	newer, found, joined := "", false, false
	m.mu.Lock()
	for _, r := range recs {
		switch {
		case r.Kind == kindNext:
		case r.Member == m.cfg.MemberID:
			if inc, ok := m.ownRecordLocked(r); ok && !found {
				newer, found = inc, true
			}
		default:
			if m.otherRecordLocked(r, now) {
				joined = true
			}
		}
	}
	m.forgetLocked(now)
	m.mu.Unlock()
	if found {
		m.supersede(newer)
	}
	if joined {
		select {
		case m.beatNow <- struct{}{}:
		default:
		}
	}
	m.wake()
}

// ownRecordLocked takes in a record of our own ID: ours (our join seen, a
// sync answered), or another instance's. It returns the incarnation of a
// join of our ID after our own: a newer instance, which supersedes us.
func (m *Member) ownRecordLocked(r memberRecord) (string, bool) {
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
		return r.Inc, true
	default:
		m.older[r.Inc] = true // it joined before us
	}
	return "", false
}

// otherRecordLocked takes in a record of another member's incarnation at
// now, and reports whether it is a join.
func (m *Member) otherRecordLocked(r memberRecord, now time.Duration) bool {
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
		return true
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
	return false
}

// forgetLocked forgets incarnations long gone, so that the map does not
// grow with every member that ever lived (a dead one is dead after
// SessionTimeout).
func (m *Member) forgetLocked(now time.Duration) {
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

// departedLocked says why a member that was live is not any more: it
// left, or it was not heard of for SessionTimeout (how long ago it was).
func (m *Member) departedLocked(id string, now time.Duration) (left bool, silent time.Duration) {
	silent = -1
	for _, st := range m.members[id] {
		if st.left {
			left = true
		}
		if d := now - st.last; silent < 0 || d < silent {
			silent = d
		}
	}
	return left, silent
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
	if err := m.roster.append(ctx, memberRecord{Member: m.cfg.MemberID, Inc: m.inc, Kind: kindBeat, Sync: nonce}); err != nil {
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
		return errSyncTimeout{m.cfg.SessionTimeout}
	}
}

type errSyncTimeout struct{ d time.Duration }

func (e errSyncTimeout) Error() string {
	return "the members log did not show our own record within " + e.d.String()
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
		m.log.Info("Could not read the members log up to now; not claiming from another instance of this member ID yet", watermill.LogFields{"err": err})
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
