package producer

import (
	"errors"
	"fmt"
	"slices"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// What the owner does with the answers: acknowledge, fail, renumber after
// a gap or a claimed epoch, and report results to messages and flushes.

// errUncertain fails a batch that would have to be resent under a new
// (epoch, seq) while an earlier request for it may still be applied: sending
// it again could write it twice.
var errUncertain = fmt.Errorf("%w: a request for this batch ended without an answer and may have been written; "+
	"it is not resent under a new sequence number, which could write it twice", protocol.ErrOutcomeUnknown)

// maxConflicts bounds how often one batch is sent again after answers that
// say its seq is taken or early (duplicates of others, gaps, stale gaps,
// lost producer state): each costs a request, and they back off.
const maxConflicts = 6

// errConflicts fails a batch that kept meeting such answers.
var errConflicts = errors.New("the server kept refusing this batch's sequence number " +
	"(another producer with the same id and epoch is writing?)")

// handle applies the final answer of one request: the one place where an
// outcome of the answer table changes the owner's state. Each kind of
// outcome is one step below: written, closed, renumbered or failed.
func (s *sequencer) handle(r result) {
	b := r.a.b
	b.inFlight = false
	s.inFlight--
	if r.earlier {
		// Whatever this answer says, a try of it may land late; a later
		// request at this seq is then ours (see send), and renumbering it
		// could write it twice.
		b.maybeLanded = true
	}
	o := classify(r.sent(s.acked), r.ans, s.p.target())
	switch o.kind {
	case acknowledged, duplicateOfOurs:
		s.written(r, o)
	case closedByUs, closedByOthers:
		s.closed(b, o)
	case duplicateOfOthers, gap, staleGap, stateLost:
		s.seqTaken(r, o)
	case fenced, notFound, rejected, unanswered, retryable:
		s.failed(b, o)
	}
}

// written acknowledges a batch the server wrote (by this request or an
// earlier one of ours).
func (s *sequencer) written(r result, o outcome) {
	b := r.a.b
	b.notified = r.notified
	if b.closeResult != nil && o.kind == acknowledged {
		// A 200 to a close without Stream-Closed: the final message is
		// written, but the stream is open.
		s.ackWith(b, o.offset, fmt.Errorf("close %s: the server wrote the final message "+
			"but did not answer Stream-Closed: true; the stream is open", protocol.RedactURL(s.p.cfg.URL)))
		return
	}
	s.ack(b, o.offset)
}

// closed records a closed stream: closed by this batch, or by another
// writer before it.
func (s *sequencer) closed(b *batch, o outcome) {
	if o.kind == closedByUs {
		s.streamClosed(o.offset, true)
		s.ack(b, o.offset)
		return
	}
	s.streamClosed(o.offset, false)
	if b.closeResult != nil && len(b.dones) == 0 {
		s.ack(b, o.offset) // close-only: the stream is closed, as asked
		return
	}
	s.setFatal(o.streamErr)
	s.fail(b, s.unknownIf(b, o.err))
}

// seqTaken sends a batch again after an answer that says its seq is taken
// or early: a duplicate of another writer's, a gap, a stale gap, or a
// producer the server no longer knows.
func (s *sequencer) seqTaken(r result, o outcome) {
	b := r.a.b
	switch o.kind {
	case duplicateOfOthers:
		s.p.log.Debug("Sequence number already used on the server, renumbering", watermill.LogFields{
			"epoch": r.a.epoch, "seq": r.a.seq, "server_seq": o.seq,
		})
		s.hi = max(s.hi, o.seq)
		s.conflict(b)

	case gap:
		if s.pendingBefore(b) {
			b.waitHead = true // an earlier batch has not landed yet
			return
		}
		// Nothing before it is pending, yet the server is behind: a batch
		// given up on did not land. Renumber from what the server expects.
		s.p.log.Debug("Server expects an earlier sequence number, renumbering", watermill.LogFields{
			"epoch": r.a.epoch, "seq": r.a.seq, "expected_seq": o.seq,
		})
		s.hi = max(o.seq-1, s.acked)
		s.conflict(b)

	case staleGap:
		// The request overtook an earlier batch on the way in, and that
		// batch was acknowledged since: send it again as it is.
		s.conflicted(b)

	case stateLost:
		if s.claim <= s.epoch {
			s.p.log.Info("The server no longer knows this producer (stream deleted and recreated, server restarted "+
				"or producer state expired); starting a new epoch", watermill.LogFields{
				"epoch": r.a.epoch, "seq": r.a.seq, "expected_seq": o.seq, "acknowledged_seq": s.acked,
			})
		}
		s.claim = max(s.claim, s.epoch+1)
		s.conflict(b)
	}
}

// failed handles a batch the server refused or did not answer: fenced,
// not found, rejected, unanswered or retryable past its budget.
func (s *sequencer) failed(b *batch, o outcome) {
	switch o.kind {
	case fenced:
		if s.p.cfg.AutoClaim && o.seq < protocol.MaxInteger {
			s.claim = max(s.claim, o.seq+1)
			s.rebase = true
			return
		}
		s.setFatal(o.streamErr)
		s.fail(b, s.unknownIf(b, o.err))

	case notFound:
		s.setFatal(o.streamErr)
		s.fail(b, s.unknownIf(b, o.err))

	case rejected:
		// The server applied nothing and did not advance: the batches after
		// this one are renumbered.
		s.rebase = true
		s.fail(b, s.unknownIf(b, o.err))

	case unanswered, retryable:
		if o.mayBeWritten || b.maybeLanded {
			// It may have landed (now or by an earlier request at this
			// seq): later batches are numbered after it, and a 409 tells
			// if the server is behind that.
			b.maybeLanded = true
			s.hi = max(s.hi, b.seq)
		}
		// Never applied, or numbered past: the batches after it move.
		s.rebase = true
		s.fail(b, s.unknownIf(b, o.err))
	}
}

// unknownIf makes err an outcome-unknown error when the batch may have
// been written by an earlier launch (the answer table says so for the
// tries of one launch; see mayBeOurs).
func (s *sequencer) unknownIf(b *batch, err error) error {
	if b.maybeLanded && !errors.Is(err, protocol.ErrOutcomeUnknown) {
		return fmt.Errorf("%w: an earlier request for this batch may have been written: %w", protocol.ErrOutcomeUnknown, err)
	}
	return err
}

// conflict renumbers after an answer that refused the batch's seq, and
// bounds how often that happens to one batch. The batch is not written
// (unless an earlier request for it may have been).
func (s *sequencer) conflict(b *batch) {
	s.rebase = true
	s.conflicted(b)
}

// conflicted counts an answer that refused the batch's seq; the next
// request for it backs off (see launch), and too many fail it.
func (s *sequencer) conflicted(b *batch) {
	b.conflicts++
	if b.conflicts > maxConflicts {
		s.fail(b, s.unknownIf(b, errConflicts))
	}
}

// pendingBefore reports whether a batch before b is still unacknowledged.
func (s *sequencer) pendingBefore(b *batch) bool {
	return len(s.queue) > 0 && s.queue[0] != b
}

// streamClosed records that the stream is closed, and whether by us, so
// that CloseStream can succeed again with the final offset.
func (s *sequencer) streamClosed(offset string, byUs bool) {
	p := s.p
	p.mu.Lock()
	p.streamIsClosed = true
	p.closedOffset = offset
	p.closedByUs = p.closedByUs || byUs
	p.mu.Unlock()
	s.setFatal(fmt.Errorf("%w: %s", protocol.ErrStreamClosed, protocol.RedactURL(p.cfg.URL)))
}

// notify gives every message of a batch its result.
func (p *Producer) notify(dones []DoneFunc, offset string, err error) {
	for _, done := range dones {
		switch {
		case done != nil:
			done(offset, err)
		case err != nil && p.cfg.OnError != nil:
			p.cfg.OnError(err)
		}
	}
}

// renumber gives the queue consecutive seqs after what the server holds,
// or from 0 in a claimed epoch. Nothing is in flight.
func (s *sequencer) renumber() {
	s.rebase = false
	epoch, base := s.epoch, s.hi+1
	if s.claim > s.epoch {
		epoch, base = s.claim, 0
	}
	var kept, uncertain []*batch
	for _, b := range s.queue {
		seq := base + int64(len(kept))
		moved := epoch != s.epoch || seq != b.seq
		if moved && b.maybeLanded {
			uncertain = append(uncertain, b)
			continue
		}
		if moved {
			b.seq = seq
		}
		b.waitHead = false
		kept = append(kept, b)
	}
	if epoch != s.epoch {
		s.p.log.Debug("Claimed producer epoch", watermill.LogFields{"epoch": epoch, "previous_epoch": s.epoch})
		s.epoch = epoch
		s.hi, s.acked = -1, -1
		s.p.epoch.Store(epoch)
	}
	s.queue = kept
	s.nextSeq = base + int64(len(kept))
	s.probing = true
	for _, b := range uncertain {
		s.complete(b, "", errUncertain)
	}
}

func (s *sequencer) ack(b *batch, offset string) { s.ackWith(b, offset, nil) }

// ackWith records that the server holds the batch; err is what its
// messages still get (a close that did not close).
func (s *sequencer) ackWith(b *batch, offset string, err error) {
	s.hi = max(s.hi, b.seq)
	s.acked = max(s.acked, b.seq)
	s.probing = false
	s.remove(b)
	s.complete(b, offset, err)
}

func (s *sequencer) fail(b *batch, err error) {
	s.remove(b)
	s.complete(b, "", err)
}

func (s *sequencer) remove(b *batch) {
	if i := slices.Index(s.queue, b); i >= 0 {
		s.queue = slices.Delete(s.queue, i, i+1)
	}
}

// failWaiting fails every queued batch that is not in flight (after a
// terminal answer or on close).
func (s *sequencer) failWaiting() {
	var failed []*batch
	kept := s.queue[:0]
	for _, b := range s.queue {
		if b.inFlight {
			kept = append(kept, b)
		} else {
			failed = append(failed, b)
		}
	}
	clear(s.queue[len(kept):])
	s.queue = kept
	for _, b := range failed {
		s.complete(b, "", s.unknownIf(b, s.fatal))
	}
}

// setFatal makes every later Append fail and every queued batch fail.
func (s *sequencer) setFatal(err error) {
	if s.fatal != nil {
		return
	}
	s.fatal = err
	p := s.p
	p.mu.Lock()
	if p.sticky == nil {
		p.sticky = err
	}
	p.cutLocked()
	if p.waiters > 0 {
		close(p.space)
		p.space = make(chan struct{})
	}
	p.mu.Unlock()
}

// complete reports a batch's result to its messages and flush markers and
// frees its buffer space.
func (s *sequencer) complete(b *batch, offset string, err error) {
	p := s.p
	switch {
	case !p.trace:
	case err != nil:
		p.log.Trace("Batch failed", watermill.LogFields{"epoch": s.epoch, "seq": b.seq, "messages": len(b.dones), "error": err.Error()})
	default:
		p.log.Trace("Batch written", watermill.LogFields{"epoch": s.epoch, "seq": b.seq, "messages": len(b.dones), "offset": offset})
	}
	switch {
	case b.closeResult != nil:
		p.mu.Lock()
		p.closingStream = false
		p.mu.Unlock()
		b.closeResult <- closeResult{offset: offset, err: err}
	case !b.notified:
		p.notify(b.dones, offset, err)
	}
	// The counters go before the markers: a Flush that returns finds
	// the producer Idle (the reaper and Close rely on it).
	p.mu.Lock()
	p.buffered -= b.size
	if b.closeResult != nil {
		p.unfinished--
	} else {
		p.unfinished -= len(b.dones)
	}
	if p.waiters > 0 {
		close(p.space)
		p.space = make(chan struct{})
	}
	p.mu.Unlock()
	kept := s.markers[:0]
	for _, m := range s.markers {
		if b.id < m.bound {
			m.remaining--
			if err != nil {
				m.errs.add(err, max(1, len(b.dones)))
			}
			if m.remaining == 0 {
				m.err = m.errs.err()
				close(m.done)
				continue
			}
		}
		kept = append(kept, m)
	}
	clear(s.markers[len(kept):])
	s.markers = kept
}
