package producer

import (
	"context"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// sequencer is the owner goroutine's state. Only run and what it calls
// touch it.
type sequencer struct {
	p        *Producer
	results  chan result
	requests sync.WaitGroup

	queue   []*batch // unacknowledged batches, in seq order
	markers []*flushMarker
	spare   []item

	epoch    int64
	hi       int64 // the highest seq the server may hold in this epoch; -1 for none
	acked    int64 // the highest seq the server acknowledged in this epoch; -1 for none
	nextSeq  int64
	inFlight int
	// probing allows one request at a time: after an epoch change (the
	// server answers 400 to a seq > 0 that overtakes seq 0 of a new epoch)
	// and after renumbering, until a request is acknowledged.
	probing bool
	// rebase renumbers the queue from hi+1 (or from 0 in epoch claim) once
	// nothing is in flight, so that no batch is ever in flight under two
	// numbers.
	rebase   bool
	claim    int64
	fatal    error
	stopping bool

	// lastWrite is the write signal of the latest launch.
	lastWrite *writeSignal
	// gate holds every launch back until it yields (Config.Gate); nil once
	// it has, or without one.
	gate <-chan error

	timer    *time.Timer
	deadline time.Time
}

func newSequencer(p *Producer) *sequencer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &sequencer{
		p:       p,
		results: make(chan result),
		epoch:   p.cfg.Epoch,
		hi:      -1,
		acked:   -1,
		claim:   -1,
		probing: true,
		timer:   t,
		gate:    p.cfg.Gate,
	}
}

func (s *sequencer) run() {
	stop := s.p.stop
	for {
		s.pump()
		if s.stopping && s.inFlight == 0 {
			break
		}
		select {
		case <-s.p.wake:
		case r := <-s.results:
			s.handle(r)
		case <-s.timer.C:
			s.deadline = time.Time{}
		case err := <-s.gate:
			s.gate = nil
			if err != nil {
				s.setFatal(err) // nothing was sent: every batch fails with it
			}
		case <-stop:
			stop = nil
			s.stop()
		}
	}
	s.exit()
}

// stop makes the owner finish: no request starts any more, every batch not
// in flight fails, and run exits once nothing is in flight.
func (s *sequencer) stop() {
	s.stopping = true
	err := error(ErrProducerClosed)
	if s.p.ctx.Err() != nil {
		err = context.Cause(s.p.ctx)
	}
	s.setFatal(err)
}

// gaveUp reports whether Close gave up, and stops the owner if so. Close
// cancels p.ctx before it closes p.stop, and an answer can reach the owner
// (the in-flight request it just cancelled) before p.stop does: without
// this, handling that answer freed the in-flight slot and pump started the
// next queued batch after all, a request that should never go (its
// messages must fail with ErrProducerClosed, "not written").
func (s *sequencer) gaveUp() bool {
	if s.p.ctx.Err() == nil {
		return false
	}
	if !s.stopping {
		s.stop()
	}
	return true
}

// exit finishes everything still queued once nothing is in flight.
func (s *sequencer) exit() {
	p := s.p
	for {
		p.mu.Lock()
		p.cutLocked()
		items := p.ready
		p.ready = nil
		if len(items) == 0 {
			p.exited = true
			p.mu.Unlock()
			break
		}
		p.mu.Unlock()
		s.absorb(items)
		s.failWaiting()
	}
	s.timer.Stop()
	s.requests.Wait()
	close(p.done)
}

func (s *sequencer) limit() int {
	if s.probing {
		return 1
	}
	return s.p.cfg.MaxInFlight
}

// pump takes new batches and starts every request that may start.
func (s *sequencer) pump() {
	// Launching changes what the open batch should do (it may go now, or
	// linger with a timer), so look at it again after every launch; else
	// it could wait, unlooked at, for the next answer.
	for s.pumpOnce() {
	}
}

// pumpOnce does one round of pump and reports whether it launched any
// request.
func (s *sequencer) pumpOnce() bool {
	s.take()
	if s.fatal != nil || s.gaveUp() {
		s.failWaiting()
		return false
	}
	if s.gate != nil {
		return false // the stream may not exist yet
	}
	if s.rebase {
		if s.inFlight > 0 {
			return false
		}
		s.renumber()
	}
	launched := false
	limit := s.limit()
	for i := 0; i < len(s.queue) && s.inFlight < limit; i++ {
		b := s.queue[i]
		if b.inFlight {
			continue
		}
		if b.waitHead && i > 0 {
			break // it waits for the batches before it to land
		}
		s.launch(b)
		launched = true
	}
	return launched
}

// take moves cut batches and flush markers from the accumulator into the
// queue, cutting the open batch first when it should go now.
func (s *sequencer) take() {
	p := s.p
	p.mu.Lock()
	if p.open != nil && !p.open.empty() && s.shouldCut(p.open, len(p.ready) > 0) {
		p.cutLocked()
	}
	items := p.ready
	p.ready = s.spare[:0]
	p.mu.Unlock()
	s.absorb(items)
	clear(items)
	s.spare = items[:0]
}

// shouldCut decides whether the open batch goes now. A lone message goes at
// once; while requests are in flight a batch lingers to gather more.
func (s *sequencer) shouldCut(open *batch, readyWaiting bool) bool {
	s.p.cutAt = 0
	if s.fatal != nil {
		return true
	}
	if s.rebase || readyWaiting || s.inFlight >= s.limit() {
		return false
	}
	for _, b := range s.queue {
		if !b.inFlight {
			return false // queued batches go first; the open one keeps filling
		}
	}
	if s.inFlight == 0 {
		return true
	}
	// A batch as large as one in flight goes at once rather than lingering:
	// waiting would leave the server idle between requests. Appends wake
	// the owner when the open batch reaches that size (cutAt).
	if t := s.pipelineThreshold(); t > 0 {
		if len(open.dones) >= t {
			return true
		}
		s.p.cutAt = t
	}
	due := open.started.Add(s.p.cfg.Linger)
	if !time.Now().Before(due) {
		return true
	}
	if s.deadline.IsZero() || due.Before(s.deadline) {
		s.deadline = due
		s.timer.Reset(time.Until(due))
	}
	return false
}

// pipelineThreshold is the message count of the largest batch in flight.
// (The smallest would let one small batch make every later one small.)
func (s *sequencer) pipelineThreshold() int {
	t := 0
	for _, b := range s.queue {
		if b.inFlight {
			t = max(t, len(b.dones))
		}
	}
	return t
}

func (s *sequencer) absorb(items []item) {
	for _, it := range items {
		if b := it.batch; b != nil {
			b.seq = s.nextSeq
			s.nextSeq++
			s.queue = append(s.queue, b)
			continue
		}
		m := it.marker
		m.remaining = len(s.queue) // every batch the owner holds was cut before it
		if m.remaining == 0 {
			close(m.done)
			continue
		}
		s.markers = append(s.markers, m)
	}
}

func (s *sequencer) launch(b *batch) {
	b.inFlight = true
	s.inFlight++
	a := attempt{b: b, epoch: s.epoch, seq: b.seq, body: b.body, contentType: s.p.cfg.ContentType, close: b.closeResult != nil,
		final: len(b.dones) > 0, acked: s.acked, maybeLanded: b.maybeLanded, after: s.lastWrite, wrote: newWriteSignal()}
	if b.conflicts > 1 {
		// The first repeat goes at once (most conflicts are a request that
		// overtook another); later ones back off.
		a.delay = s.p.cfg.Retry.Backoff(b.conflicts - 1)
	}
	s.lastWrite = a.wrote
	if s.p.trace {
		s.p.log.Trace("Sending batch", watermill.LogFields{
			"epoch": a.epoch, "seq": a.seq, "messages": len(b.dones), "bytes": len(b.body),
		})
	}
	s.requests.Add(1)
	go func() {
		defer s.requests.Done()
		r := s.p.send(a)
		if offset, ok := r.written(); ok {
			// Written is final, whatever the owner does next: tell the
			// messages now rather than after one more goroutine hand-off.
			// Until this result reaches the owner, nothing else completes
			// an in-flight batch, and dones never change after the cut.
			s.p.notify(a.b.dones, offset, nil)
			r.notified = true
		}
		s.results <- r
	}()
}
