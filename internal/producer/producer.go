// Package producer is the exactly-once idempotent producer for one Durable
// Streams stream: it batches messages, pipelines requests, numbers them
// (Producer-Id, Producer-Epoch, Producer-Seq) and retries them so that every
// acknowledged message is in the stream exactly once, in append order.
//
// One owner goroutine holds all sequencing state (the queue of unacknowledged
// batches, epoch, sequence numbers, requests in flight). Request goroutines
// only do HTTP and report back over a channel. Append only touches the batch
// being filled, under a mutex.
package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// DoneFunc receives the result of one message: the stream offset after its
// batch ("" when the server answered that the batch was already written),
// or the error. It is called exactly once, from a producer goroutine, and
// must not block. The DoneFuncs of different batches may run concurrently
// (a written batch reports from its request goroutine); errors are all
// reported from the owner goroutine, one at a time.
//
// An error matching protocol.ErrOutcomeUnknown means the message may or
// may not have been written; every other error means it was not.
type DoneFunc func(offset string, err error)

// Producer appends messages to one stream exactly once. It is safe for
// concurrent use.
type Producer struct {
	cfg   Config
	json  bool
	log   watermill.LoggerAdapter
	trace bool // log has somewhere to put Trace entries
	epoch atomic.Int64
	wake  chan struct{}
	// cutAt, when not zero, is the open batch's message count at which the
	// owner wants to hear of it (see sequencer.shouldCut). Needs mu.
	cutAt  int
	stop   chan struct{}
	done   chan struct{} // closed when the owner goroutine has exited
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	open     *batch // the batch being filled; nil when none
	ready    []item // cut batches and flush markers, not yet taken by the owner
	nextID   uint64
	buffered int
	// unfinished counts messages (and closes) accepted whose result has
	// not been reported yet.
	unfinished int
	last       sizeHint      // of the last batch cut, to size the next one
	waiters    int           // Appends waiting for buffer space
	space      chan struct{} // closed when buffer space is freed
	sticky     error         // every later Append fails with it
	closing    bool
	exited     bool // the owner has finished every marker and batch
	// closingStream: a CloseStream request is queued or in flight.
	closingStream bool
	// streamIsClosed: an answer said the stream is closed; closedOffset is
	// its final offset, closedByUs whether our close did it.
	streamIsClosed bool
	closedOffset   string
	closedByUs     bool

	// closeStreamSlot holds one CloseStream at a time; a channel, so that
	// a second one waits no longer than its context.
	closeStreamSlot chan struct{}

	closeOnce sync.Once
	closeErr  error
	// closeGaveUp, when set (by tests), runs in a Close that gives up,
	// after it cancelled the requests and before it closes p.stop.
	closeGaveUp func()
}

// New starts a producer. The stream must exist.
func New(cfg Config) (*Producer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	_, nop := cfg.Logger.(watermill.NopLogger)
	p := &Producer{
		trace: !nop,
		cfg:   cfg,
		json:  protocol.IsJSON(cfg.ContentType),
		log: cfg.Logger.With(watermill.LogFields{
			"stream_url":  protocol.RedactURL(cfg.URL),
			"producer_id": cfg.ProducerID,
		}),
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		ctx:    ctx,
		cancel: cancel,
		space:  make(chan struct{}),

		closeStreamSlot: make(chan struct{}, 1),
	}
	p.epoch.Store(cfg.Epoch)
	s := newSequencer(p)
	go s.run()
	return p, nil
}

// Idle reports whether every message appended so far has its result:
// nothing is buffered or in flight.
func (p *Producer) Idle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.unfinished == 0
}

// Broken returns the error every later Append fails with (a closed,
// missing or fenced stream), or nil while the producer can still write.
func (p *Producer) Broken() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sticky
}

// Epoch returns the epoch the producer writes with now.
func (p *Producer) Epoch() int64 { return p.epoch.Load() }

// Validate is the check Append makes on every message.
func (p *Producer) Validate(payload []byte) error {
	if err := p.CheckSize(payload); err != nil {
		return err
	}
	return CheckPayload(payload, p.json)
}

// CheckPayload is what every append of one message needs, whoever sends
// it: a payload (the protocol has no empty append) that, with checkJSON,
// is one valid JSON value.
func CheckPayload(payload []byte, checkJSON bool) error {
	if len(payload) == 0 {
		return ErrEmptyMessage
	}
	if checkJSON && !json.Valid(payload) {
		return ErrInvalidJSON
	}
	return nil
}

// CheckSize is Validate without the JSON check: all that a payload valid
// by construction still needs.
func (p *Producer) CheckSize(payload []byte) error {
	if err := CheckPayload(payload, false); err != nil {
		return err
	}
	limit := p.cfg.MaxBatchBytes
	if p.json {
		limit -= 2 // "[" and "]"
	}
	if len(payload) > limit {
		return fmt.Errorf("%w: %d bytes, at most %d fit in a request of MaxBatchBytes %d", ErrMessageTooLarge, len(payload), limit, p.cfg.MaxBatchBytes)
	}
	return nil
}

// Append queues one message. It fails at once (and done is never called)
// for an invalid message, a closed producer or stream, a fenced producer,
// or when ctx ends while it waits for buffer space. Otherwise it returns
// nil and done gets the result later; a nil done sends errors to
// Config.OnError. The payload is copied: the caller may reuse it.
func (p *Producer) Append(ctx context.Context, payload []byte, done DoneFunc) error {
	if err := p.Validate(payload); err != nil {
		return err
	}
	return p.AppendValidated(ctx, payload, done)
}

// AppendValidated is Append for a payload that already passed Validate, or
// is valid JSON by construction: it skips the JSON check, which costs as
// much as the rest of Append. An invalid JSON payload would make the server
// refuse its whole batch, other callers' messages included.
func (p *Producer) AppendValidated(ctx context.Context, payload []byte, done DoneFunc) error {
	if err := p.CheckSize(payload); err != nil {
		return err
	}
	if err := p.reserve(ctx, len(payload)); err != nil {
		return err
	}
	wake := p.addLocked(payload, done)
	p.mu.Unlock()
	if wake {
		p.signal()
	}
	return nil
}

// AppendAllValidated is AppendValidated for several messages at once, all
// or nothing: either it buffers every payload, in order, and returns nil
// (dones[i] then gets payloads[i]'s result), or it buffers none and
// returns the error AppendValidated would (an oversized or empty payload,
// a closed producer or stream, a fenced producer, or ctx ending while it
// waits for buffer space for all of them). It waits until the buffer has
// room for their total, or is empty: a call larger than MaxBufferedBytes
// goes in alone. dones must be as long as payloads.
func (p *Producer) AppendAllValidated(ctx context.Context, payloads [][]byte, dones []DoneFunc) error {
	if len(dones) != len(payloads) {
		panic(fmt.Sprintf("producer: AppendAllValidated with %d payloads and %d dones", len(payloads), len(dones)))
	}
	total := 0
	for _, payload := range payloads {
		if err := p.CheckSize(payload); err != nil {
			return err
		}
		total += len(payload)
	}
	if len(payloads) == 0 {
		return nil
	}
	if err := p.reserve(ctx, total); err != nil {
		return err
	}
	wake := false
	for i, payload := range payloads {
		if p.addLocked(payload, dones[i]) {
			wake = true
		}
	}
	p.mu.Unlock()
	if wake {
		p.signal()
	}
	return nil
}

// reserve waits until n more bytes fit in the buffer (or it is empty) and
// the producer takes appends, and returns with p.mu held; or it returns
// why not, without p.mu.
func (p *Producer) reserve(ctx context.Context, n int) error {
	p.mu.Lock()
	for {
		if err := p.refusal(); err != nil {
			p.mu.Unlock()
			return err
		}
		if p.buffered == 0 || p.buffered+n <= p.cfg.MaxBufferedBytes {
			return nil
		}
		space := p.space
		p.waiters++
		p.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			p.mu.Lock()
			p.waiters--
			p.mu.Unlock()
			return fmt.Errorf("waiting for producer buffer space: %w", context.Cause(ctx))
		}
		p.mu.Lock()
		p.waiters--
	}
}

// addLocked adds one message to the open batch, cutting it first when the
// message does not fit, and reports whether the owner must be woken.
// Needs p.mu.
func (p *Producer) addLocked(payload []byte, done DoneFunc) (wake bool) {
	if p.open != nil && !p.open.fits(len(payload), p.cfg.MaxBatchBytes) {
		p.cutLocked()
		wake = true
	}
	if p.open == nil {
		p.open = newBatch(p.json, time.Now(), p.last.grown(p.cfg.MaxBatchBytes))
		wake = true // the owner may send it at once or start the linger
	}
	p.open.add(payload, done)
	p.buffered += len(payload)
	p.unfinished++
	if p.cutAt > 0 && len(p.open.dones) == p.cutAt {
		wake = true // big enough to go while another batch is in flight
	}
	return wake
}

// refusal is why Append must fail now, if it must. Needs p.mu.
func (p *Producer) refusal() error {
	if p.sticky != nil {
		return p.sticky
	}
	if p.closing {
		return ErrProducerClosed
	}
	if p.closingStream {
		return fmt.Errorf("%w: %s is being closed", protocol.ErrStreamClosed, protocol.RedactURL(p.cfg.URL))
	}
	return nil
}

// cutLocked hands the open batch to the owner. Needs p.mu.
func (p *Producer) cutLocked() {
	if p.open == nil {
		return
	}
	b := p.open
	p.open = nil
	b.id = p.nextID
	p.nextID++
	p.last = sizeHint{body: len(b.body), messages: len(b.dones)}
	b.seal()
	p.ready = append(p.ready, item{batch: b})
}

func (p *Producer) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Flush waits until every message appended before it has its result. It
// returns nil only if all of them were written; otherwise the errors of
// the failed ones (the first few distinct errors and a count). Messages
// that had already failed before Flush was called are not counted.
func (p *Producer) Flush(ctx context.Context) error {
	m, err := p.mark()
	if err != nil {
		return err
	}
	select {
	case <-m.done:
		return m.err
	case <-ctx.Done():
		return fmt.Errorf("flush: %w", context.Cause(ctx))
	}
}

// mark cuts the open batch and queues a flush marker behind it.
func (p *Producer) mark() (*flushMarker, error) {
	p.mu.Lock()
	if p.exited {
		p.mu.Unlock()
		return nil, ErrProducerClosed
	}
	p.cutLocked()
	m := &flushMarker{bound: p.nextID, done: make(chan struct{})}
	p.ready = append(p.ready, item{marker: m})
	p.mu.Unlock()
	p.signal()
	return m, nil
}

// CloseStream flushes, then closes the stream with a request that carries
// the producer headers (so that its retry is recognised), with final as the
// last message when it is not empty. It returns the stream's final offset
// once an answer shows the stream closed.
//
// It is idempotent: once this producer closed the stream, CloseStream
// returns the final offset again; a close-only call (no final message) on a
// stream closed by someone else succeeds too. A close that fails leaves the
// producer usable. While the close is pending, and after it succeeded,
// Append fails with protocol.ErrStreamClosed. A failure of the messages
// flushed first does not stop the close; ctx does. When ctx ends while the
// close is queued or in flight, the error matches
// protocol.ErrOutcomeUnknown: the stream may still be closed. While
// another CloseStream of the producer is pending, CloseStream waits for it
// no longer than ctx; ending then, it has queued nothing (the error wraps
// the context's).
func (p *Producer) CloseStream(ctx context.Context, final []byte) (string, error) {
	if len(final) > 0 {
		if err := p.Validate(final); err != nil {
			return "", err
		}
	}
	select {
	case p.closeStreamSlot <- struct{}{}:
		defer func() { <-p.closeStreamSlot }()
	case <-ctx.Done():
		// This call queued nothing; the other one may yet close the stream.
		return "", fmt.Errorf("close stream %s: waiting for another CloseStream of it to finish: %w",
			protocol.RedactURL(p.cfg.URL), context.Cause(ctx))
	}
	if offset, done := p.alreadyClosed(len(final) > 0); done {
		return offset, nil
	}
	if err := p.Flush(ctx); err != nil && ctx.Err() != nil {
		return "", err
	}
	result := make(chan closeResult, 1)
	p.mu.Lock()
	if offset, done := p.alreadyClosedLocked(len(final) > 0); done {
		p.mu.Unlock()
		return offset, nil
	}
	if err := p.refusal(); err != nil {
		p.mu.Unlock()
		return "", err
	}
	p.closingStream = true
	p.cutLocked()
	b := newBatch(p.json, time.Now(), sizeHint{body: len(final) + 2, messages: 1})
	b.closeResult = result
	if len(final) > 0 {
		b.add(final, nil)
		p.buffered += len(final)
	}
	p.unfinished++
	p.open = b
	p.cutLocked()
	p.mu.Unlock()
	p.signal()
	select {
	case r := <-result:
		return r.offset, r.err
	case <-ctx.Done():
		return "", fmt.Errorf("%w: close stream %s: the close is still pending and may yet happen: %v",
			protocol.ErrOutcomeUnknown, protocol.RedactURL(p.cfg.URL), context.Cause(ctx))
	}
}

// alreadyClosed reports whether CloseStream has nothing left to do: the
// stream was closed by this producer, or closed at all for a close-only
// call.
func (p *Producer) alreadyClosed(withFinal bool) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.alreadyClosedLocked(withFinal)
}

func (p *Producer) alreadyClosedLocked(withFinal bool) (string, bool) {
	if p.closedByUs || (p.streamIsClosed && !withFinal) {
		return p.closedOffset, true
	}
	return "", false
}

// Close flushes within ctx, then stops every goroutine of the producer.
// It never closes the stream. It returns nil when every message appended
// before it was written, even if ctx ends as it returns; otherwise the
// errors of the messages that failed, as Flush. When ctx ends first, Close
// gives up: messages on the wire fail with an error matching
// protocol.ErrOutcomeUnknown (they may have been written), the others with
// ErrProducerClosed (wrapping the context's error), and Close's error
// matches protocol.ErrOutcomeUnknown if any message's does, ErrProducerClosed
// otherwise. Close is idempotent.
func (p *Producer) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closing = true
		p.mu.Unlock()
		m, err := p.mark()
		if err == nil {
			select {
			case <-m.done:
				err = m.err
			case <-ctx.Done():
				cause := fmt.Errorf("%w: %w", ErrProducerClosed, context.Cause(ctx))
				p.cancel(cause)
				if p.closeGaveUp != nil {
					p.closeGaveUp()
				}
				close(p.stop)
				<-p.done
				<-m.done // the owner gave every message its result before it exited
				err = gaveUp(m.err, cause)
			}
		}
		select {
		case <-p.stop:
		default:
			close(p.stop)
		}
		<-p.done
		p.cancel(ErrProducerClosed)
		p.closeErr = err
	})
	<-p.done
	return p.closeErr
}

// gaveUp is Close's error when ctx ended before every message had its
// result: nil if none failed after all, else one that says "may have been
// written" if any message's error does.
func gaveUp(failed, cause error) error {
	switch {
	case failed == nil:
		return nil
	case errors.Is(failed, protocol.ErrOutcomeUnknown):
		return fmt.Errorf("%v; messages in flight may have been written: %w", cause, failed)
	default:
		return fmt.Errorf("%w: %w", cause, failed)
	}
}
