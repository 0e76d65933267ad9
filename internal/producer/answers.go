package producer

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

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

// handle applies the final answer of one request.
func (s *sequencer) handle(r result) {
	b := r.a.b
	b.inFlight = false
	s.inFlight--
	if r.uncertain {
		b.maybeLanded = true
	}
	url := protocol.RedactURL(s.p.cfg.URL)
	httpErr := func() error {
		return &protocol.HTTPError{Method: http.MethodPost, URL: url, StatusCode: r.status, Body: r.body}
	}
	switch {
	case r.err != nil:
		if errors.Is(r.err, protocol.ErrOutcomeUnknown) {
			// It may have landed: later batches are numbered after it, and a
			// 409 tells if the server is behind that.
			s.hi = max(s.hi, b.seq)
			s.rebase = true
		} else if !b.maybeLanded {
			// Never applied: the batches after it take its place.
			s.rebase = true
		}
		s.fail(b, r.err)

	case r.written():
		b.notified = r.notified
		s.ack(b, r.header.Get(protocol.HeaderNextOffset))

	case r.status == http.StatusNoContent:
		last, ok := headerInt(r.header, protocol.HeaderProducerSeq)
		if b.maybeLanded || b.closeResult != nil || !ok {
			s.ack(b, r.header.Get(protocol.HeaderNextOffset)) // our earlier try was written
			return
		}
		// A duplicate answer to the first request with this (epoch, seq):
		// someone else wrote that seq (a restarted producer reusing the
		// epoch, or a batch given up on that landed late). Ours is not in
		// the stream: number it after what the server has.
		s.p.log.Debug("Sequence number already used on the server, renumbering", watermill.LogFields{
			"epoch": r.a.epoch, "seq": r.a.seq, "server_seq": last,
		})
		s.hi = max(s.hi, last)
		s.rebase = true

	case r.status == http.StatusConflict && r.header.Get(protocol.HeaderClosed) == "true":
		err := fmt.Errorf("%w: %s", protocol.ErrStreamClosed, url)
		s.setFatal(err)
		s.fail(b, err)

	case r.status == http.StatusConflict && r.header.Get(protocol.HeaderExpectedSeq) != "":
		expected, ok := headerInt(r.header, protocol.HeaderExpectedSeq)
		switch {
		case !ok:
			s.fail(b, httpErr())
			s.rebase = true
		case len(s.queue) > 0 && s.queue[0] != b:
			b.waitHead = true // an earlier batch has not landed yet
		default:
			// Nothing before it is pending, yet the server is behind: a batch
			// given up on did not land. Renumber from what the server expects.
			s.p.log.Debug("Server expects an earlier sequence number, renumbering", watermill.LogFields{
				"epoch": r.a.epoch, "seq": r.a.seq, "expected_seq": expected,
			})
			// A 409 may be older than acknowledgements handled since: the
			// request that drew it can overtake an earlier batch on the way
			// in while its answer comes back after that batch's. What was
			// acknowledged is on the server whatever the 409 says.
			s.hi = max(expected-1, s.acked)
			s.rebase = true
		}

	case r.status == http.StatusForbidden && r.header.Get(protocol.HeaderProducerEpoch) != "":
		server, ok := headerInt(r.header, protocol.HeaderProducerEpoch)
		if !ok {
			s.fail(b, httpErr())
			s.rebase = true
			return
		}
		if s.p.cfg.AutoClaim && server < protocol.MaxInteger {
			s.claim = max(s.claim, server+1)
			s.rebase = true
			return
		}
		err := &protocol.StaleEpochError{ServerEpoch: server, Epoch: r.a.epoch}
		s.setFatal(err)
		s.fail(b, err)

	case r.status == http.StatusNotFound:
		err := fmt.Errorf("%w: %s", protocol.ErrStreamNotFound, url)
		s.setFatal(err)
		s.fail(b, err)

	default:
		// 400, 413 and the like: the server applied nothing and did not
		// advance, so the batches after this one are renumbered.
		s.fail(b, httpErr())
		s.rebase = true
	}
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

func headerInt(h http.Header, name string) (int64, bool) {
	n, err := strconv.ParseInt(h.Get(name), 10, 64)
	return n, err == nil && n >= 0
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

func (s *sequencer) ack(b *batch, offset string) {
	s.hi = max(s.hi, b.seq)
	s.acked = max(s.acked, b.seq)
	s.probing = false
	s.remove(b)
	s.complete(b, offset, nil)
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
		s.complete(b, "", s.fatal)
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
		b.closeResult <- closeResult{offset: offset, err: err}
	case !b.notified:
		p.notify(b.dones, offset, err)
	}
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

	p.mu.Lock()
	p.buffered -= b.size
	if p.waiters > 0 {
		close(p.space)
		p.space = make(chan struct{})
	}
	p.mu.Unlock()
}
