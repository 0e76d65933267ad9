package group

import (
	"context"
	"encoding/json"
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

	mu       sync.Mutex // serialises writes
	seq      int64
	last     json.RawMessage
	err      error
	released bool
}

// Stream is the name of the leased stream.
func (l *Lease) Stream() string { return l.stream }

// Epoch is the ownership generation of this lease.
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
		err = l.writeLocked(ctx, ownerRecord{Position: pos})
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

// Release hands the stream over: it stores pos (nil keeps the last stored
// one) with a released mark, ends the lease, and tells the other members
// the stream is free. Releasing a lost lease writes nothing and returns its
// error; releasing twice is a no-op.
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
	if err == nil {
		err = l.writeLocked(ctx, ownerRecord{Position: pos, Released: true})
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

// writeLocked sends one fenced record at the next seq.
func (l *Lease) writeLocked(ctx context.Context, rec ownerRecord) error {
	rec.Owner, rec.Claim, rec.Epoch = l.m.cfg.MemberID, l.claim, l.epoch
	o, reason, err := fencedPost(ctx, l.m.cfg.Client, l.m.cfg.RetryPolicy, l.url, rec, l.seq+1)
	switch o {
	case written, duplicate:
		// At our epoch only we write after the claim (seq 0), so a
		// duplicate of seq > 0 is our own earlier try.
		l.seq++
		return nil
	case fenced:
		l.err = &FencedError{Stream: l.stream, Epoch: l.epoch, Reason: reason}
		l.m.log.Info("Consumer group lease fenced, stopping the stream", l.fields().Add(watermill.LogFields{"reason": reason}))
		return l.err
	}
	if err == nil {
		err = fmt.Errorf("%s", reason)
	}
	return fmt.Errorf("store position of stream %q: %w", l.stream, err)
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
