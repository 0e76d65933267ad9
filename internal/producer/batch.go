package producer

import "time"

// batch is the unit of one request: one body, one sequence number, and the
// callbacks of the messages in it, in append order.
//
// Until it is cut, a batch belongs to the accumulator (Producer.mu); after
// that only the owner goroutine touches it.
type batch struct {
	id      uint64 // cut order; flush markers count batches by it
	json    bool
	body    []byte // JSON mode: "[" m1 "," ... "," (seal turns the last "," into "]")
	dones   []DoneFunc
	size    int // bytes held against MaxBufferedBytes
	started time.Time

	// closeResult is set on the batch CloseStream sends: Stream-Closed: true.
	closeResult chan closeResult

	// Owner state.
	seq      int64
	inFlight bool
	// waitHead: the server answered 409 because an earlier batch had not
	// landed yet; resend once every earlier batch is acknowledged.
	waitHead bool
	// maybeLanded: a request with the current (epoch, seq) ended without a
	// definite answer, so the server may have written it.
	maybeLanded bool
	// notified: the messages already have their result.
	notified bool
	// conflicts counts answers that refused its seq (see conflict).
	conflicts int
}

// flushMarker waits for every batch cut before it (ids below bound).
type flushMarker struct {
	bound     uint64
	remaining int
	errs      errorSet
	err       error
	done      chan struct{}
}

// item is what the accumulator hands to the owner, in order.
type item struct {
	batch  *batch
	marker *flushMarker
}

type closeResult struct {
	offset string
	err    error
}

// sizeHint is how big a new batch is likely to get.
type sizeHint struct {
	body     int
	messages int
}

// grown leaves some room to grow, within the largest body possible.
func (h sizeHint) grown(maxBody int) sizeHint {
	return sizeHint{body: min(h.body+h.body/8, maxBody), messages: h.messages + h.messages/8}
}

// newBatch starts a batch with room for what it will likely hold (the size
// of the batch before it), so that a steady stream of batches does not
// copy each body while it doubles.
func newBatch(jsonMode bool, now time.Time, hint sizeHint) *batch {
	b := &batch{
		json:    jsonMode,
		started: now,
		body:    make([]byte, 0, max(hint.body, 256)),
		dones:   make([]DoneFunc, 0, max(hint.messages, 1)),
	}
	if jsonMode {
		b.body = append(b.body, '[')
	}
	return b
}

func (b *batch) empty() bool { return len(b.dones) == 0 && b.closeResult == nil }

// fits reports whether a message of n bytes can join without the sealed
// body exceeding limit.
func (b *batch) fits(n, limit int) bool {
	if b.json {
		return len(b.body)+n+1 <= limit // the message, then "," or "]"
	}
	return len(b.body)+n <= limit
}

func (b *batch) add(payload []byte, done DoneFunc) {
	b.body = append(b.body, payload...)
	if b.json {
		b.body = append(b.body, ',')
	}
	b.dones = append(b.dones, done)
	b.size += len(payload)
}

// seal finishes the body once the batch is cut.
func (b *batch) seal() {
	if !b.json {
		return
	}
	if len(b.dones) == 0 {
		b.body = b.body[:0] // a close-only request has no body
		return
	}
	b.body[len(b.body)-1] = ']'
}
