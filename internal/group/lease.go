package group

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
)

// Lease is a member's ownership of one stream, from a claim until it is
// released, revoked or lost. It is safe for concurrent use.
//
// The consumer of a lease reads the stream from Start, checks Valid before
// each delivery, stores positions with Store, and stops when Done is
// closed, then calls Release with its last position.
type Lease struct {
	m       *Member
	stream  string
	url     string
	epoch   int64
	claim   string
	session uint64
	start   json.RawMessage

	done     chan struct{}
	doneOnce sync.Once
	// ended is closed once the lease is over for good (lost or
	// released); a revoked lease has not ended until then.
	ended     chan struct{}
	endedOnce sync.Once
	// revoked is closed when the member asks for the stream back
	// (rebalance or leave); the lease stays valid until Release.
	revoked    chan struct{}
	revokeOnce sync.Once

	mu sync.Mutex // serialises writes
	// seq is the last seq written to the root (the claim is 0).
	seq int64
	// log is the position log written now; logWrites how many records it
	// took (the next seq there); hint is the log the root names last.
	log, logWrites, hint int64
	// rotations since the last hint.
	rotations int
	last      json.RawMessage
	err       error
	released  bool
}

func newLease(m *Member, stream string, epoch int64, claim string, session uint64, start json.RawMessage) *Lease {
	return &Lease{
		m: m, stream: stream, url: m.cfg.ownerURL(stream), epoch: epoch, claim: claim, session: session,
		start: start, last: start,
		done: make(chan struct{}), ended: make(chan struct{}), revoked: make(chan struct{}),
	}
}

// Stream is the name of the leased stream.
func (l *Lease) Stream() string { return l.stream }

// Epoch is the ownership generation of this lease: every claim of the
// stream has a higher one, and the server refuses the root writes of a
// lower one.
func (l *Lease) Epoch() int64 { return l.epoch }

// Start is the position the previous owner stored (nil if none): where
// this owner starts reading.
func (l *Lease) Start() json.RawMessage { return l.start }

// Done is closed when the lease has ended (lost or released) or was
// revoked: stop delivering. Valid is false from then on.
func (l *Lease) Done() <-chan struct{} { return l.done }

// Revoked is closed when the member wants the stream handed over (a
// rebalance or Leave): stop delivering, then Release with the last
// position. A revoked lease may still Store and Release; Done is closed
// too.
func (l *Lease) Revoked() <-chan struct{} { return l.revoked }

// Ended is closed once the lease is over for good: lost (fenced, its
// session expired) or released. A revoked lease has not ended until then,
// so a consumer may finish the message in its hands first.
func (l *Lease) Ended() <-chan struct{} { return l.ended }

// Err says why the lease ended (a *FencedError), nil while it holds.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Valid reports, without a request, whether this member may still deliver
// from the stream: the lease has not ended and the member's session has not
// run past its local deadline (last heartbeat sent + SessionTimeout -
// Margin, on the monotonic clock). A member resumed after a long pause sees
// false before it delivers anything.
func (l *Lease) Valid() bool {
	select {
	case <-l.done:
		return false
	default:
	}
	return l.m.sessionValid(l.session)
}

// Store records pos as the stream's position, fenced: it fails with a
// *FencedError once the lease is lost, locally or because the server
// refused the write. A revoked lease may still store until Release.
func (l *Lease) Store(ctx context.Context, pos json.RawMessage) error {
	l.mu.Lock()
	err := l.writableLocked()
	if err == nil {
		err = l.storeLocked(ctx, pos)
	}
	if err == nil {
		l.last = pos
	}
	lost := l.err != nil
	l.mu.Unlock()
	if lost {
		l.end()
	}
	return err
}

// recordStart keeps, in this owner's first log, the position the
// take-over found there when it differs from the one the claim carried,
// so that a crash before the first Store does not send the next owner
// back.
func (l *Lease) recordStart(ctx context.Context, claimed json.RawMessage) error {
	if l.start == nil || bytes.Equal(l.start, claimed) {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.postLocked(ctx, l.m.cfg.logURL(l.stream, l.epoch, 0), ownerRecord{Position: l.start}, 0, false); err != nil {
		return err
	}
	l.logWrites = 1
	return nil
}

// Release hands the stream over: it stores pos (nil keeps the last stored
// one) with a released mark, ends the lease, and tells the other members
// the stream is free. Releasing a lease lost to the server (fenced,
// superseded, left) writes nothing and returns its error; one lost only to
// a local session expiry still writes its fenced release. Releasing twice
// is a no-op.
func (l *Lease) Release(ctx context.Context, pos json.RawMessage) error {
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return nil
	}
	if pos == nil {
		pos = l.last
	}
	err := l.writableLocked()
	if expiredOnly(err) {
		// Lost only to our own clock (a pause past the session): the
		// stream may still name us, and an assignee waits for a live
		// owner to release. The write is fenced, so the server refuses it
		// if anyone claimed the stream since; otherwise it frees the
		// stream at the last stored position instead of stalling it until
		// this member leaves.
		err = nil
	}
	if err == nil {
		err = l.rootLocked(ctx, ownerRecord{Position: pos, Released: true, Log: l.log})
	}
	if err == nil {
		l.last = pos
		l.released = true
		l.err = &FencedError{Stream: l.stream, Epoch: l.epoch, Reason: reasonReleased}
	}
	lost := l.err != nil
	l.mu.Unlock()
	if lost {
		l.end()
	}
	if err != nil {
		return err
	}
	l.m.released(ctx, l)
	return nil
}

// expiredOnly says whether err is the lease's loss to a local session
// expiry and nothing else.
func expiredOnly(err error) bool {
	var f *FencedError
	return errors.As(err, &f) && f.Reason == reasonExpired
}

// writableLocked refuses a write of an ended (but not merely revoked)
// lease, or one whose session ran out.
func (l *Lease) writableLocked() error {
	if l.err != nil {
		return l.err
	}
	if !l.m.sessionValid(l.session) {
		l.err = &FencedError{Stream: l.stream, Epoch: l.epoch, Reason: reasonExpired}
		l.m.log.Info("Consumer group lease expired locally, storing nothing more", l.fields())
		return l.err
	}
	return nil
}

// storeLocked appends pos to the current position log, or, when that log
// is full, closes it with pos and the name of the next log, then creates
// the next (see rotateLocked).
func (l *Lease) storeLocked(ctx context.Context, pos json.RawMessage) error {
	if l.logWrites < int64(l.m.cfg.rotateEvery) {
		if err := l.postLocked(ctx, l.logURL(l.log), ownerRecord{Position: pos}, l.logWrites, false); err != nil {
			return err
		}
		l.logWrites++
		return nil
	}
	return l.rotateLocked(ctx, pos)
}

// rotateLocked starts log n+1: log n is closed with pos and the name of
// n+1 (fenced: a newer owner that closed it first makes this a 409), then
// n+1 is created (a newer owner that sealed it makes this a 409). Every
// defaultHintEvery rotations the root is told the current log (fenced)
// and the logs before it are deleted, so the root takes one record per
// many positions and a claim finds the last log with a few requests.
func (l *Lease) rotateLocked(ctx context.Context, pos json.RawMessage) error {
	next := l.log + 1
	if err := l.postLocked(ctx, l.logURL(l.log), ownerRecord{Position: pos, Next: next}, l.logWrites, true); err != nil {
		return err
	}
	if o, reason, err := createLog(ctx, l.m.cfg.Client, l.m.cfg.RetryPolicy, l.logURL(next)); o != written {
		if o == fenced {
			return l.fencedLocked(reason)
		}
		return outcomeError(fmt.Sprintf("start position log %d of stream %q", next, l.stream), reason, err)
	}
	l.log, l.logWrites = next, 0
	l.rotations++
	if l.rotations < l.m.cfg.hintEvery {
		return nil
	}
	if err := l.rootLocked(ctx, ownerRecord{Position: pos, Log: next}); err != nil {
		return err
	}
	for n := l.hint; n < next; n++ {
		l.m.cfg.Client.DeleteBestEffort(ctx, l.logURL(n))
	}
	l.hint, l.rotations = next, 0
	return nil
}

func (l *Lease) logURL(n int64) string { return l.m.cfg.logURL(l.stream, l.epoch, n) }

// rootLocked appends a fenced record to the ownership root.
func (l *Lease) rootLocked(ctx context.Context, rec ownerRecord) error {
	if err := l.postLocked(ctx, l.url, rec, l.seq+1, false); err != nil {
		return err
	}
	l.seq++
	return nil
}

// postLocked sends one record at (our epoch, seq) to url, closing the
// stream with it when closing. At our epoch only we write (a rival
// claimer writes seq 0 of the root only), so a duplicate answer is our own
// earlier try.
func (l *Lease) postLocked(ctx context.Context, url string, rec ownerRecord, seq int64, closing bool) error {
	rec.Owner, rec.Claim, rec.Inc, rec.Epoch = l.m.cfg.MemberID, l.claim, l.m.inc, l.epoch
	o, reason, err := fencedPost(ctx, l.m.cfg.Client, l.m.cfg.RetryPolicy, url, rec, seq, closing)
	switch o {
	case written, duplicate:
		return nil
	case fenced:
		return l.fencedLocked(reason)
	}
	return outcomeError(fmt.Sprintf("store position of stream %q", l.stream), reason, err)
}

func (l *Lease) fencedLocked(reason string) error {
	l.err = &FencedError{Stream: l.stream, Epoch: l.epoch, Reason: reason}
	l.m.log.Info("Consumer group lease fenced, stopping the stream", l.fields().Add(watermill.LogFields{"reason": reason}))
	return l.err
}

// lose ends the lease for reason (session expiry, leave).
func (l *Lease) lose(reason string) {
	l.mu.Lock()
	if l.err == nil {
		l.err = &FencedError{Stream: l.stream, Epoch: l.epoch, Reason: reason}
	}
	l.mu.Unlock()
	l.end()
}

func (l *Lease) revoke() {
	l.revokeOnce.Do(func() { close(l.revoked) })
	l.closeDone()
}

func (l *Lease) closeDone() { l.doneOnce.Do(func() { close(l.done) }) }

// end closes the lease for good; the member forgets it.
func (l *Lease) end() {
	l.closeDone()
	l.endedOnce.Do(func() {
		close(l.ended)
		l.m.forget(l)
	})
}

func (l *Lease) fields() watermill.LogFields {
	return watermill.LogFields{"group": l.m.cfg.Group, "topic": l.m.cfg.Topic, "stream": l.stream, "epoch": l.epoch, "member": l.m.cfg.MemberID}
}
