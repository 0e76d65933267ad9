package jsonscan

import (
	"errors"
	"fmt"
	"io"
)

// SplitArray splits a JSON array (a JSON-mode read body) into its
// elements, which share memory with body, validating as it goes. A body
// of whitespace only has no elements. Like encoding/json it leaves UTF-8
// to whoever decodes the strings, so that one bad message does not cost
// the others. Errors are *SyntaxError.
func SplitArray(body []byte) ([][]byte, error) {
	a := ArrayReader{buf: body, eof: true, maxElem: len(body)}
	var elems [][]byte
	for {
		e, err := a.Next()
		if err == io.EOF {
			return elems, nil
		}
		if err != nil {
			return nil, err
		}
		elems = append(elems, e[:len(e):len(e)])
	}
}

// ArrayReader reads the elements of one JSON array from r, one at a time;
// memory is bounded by the largest element (maxElem bytes), not by the
// array. It validates as SplitArray does.
type ArrayReader struct {
	r       io.Reader
	maxElem int
	buf     []byte
	start   int // the unread part of buf
	base    int // stream offset of buf[0]
	eof     bool
	at      arrayAt
	sc      scanner
	err     error // sticky
}

type arrayAt uint8

const (
	atOpen  arrayAt = iota // before '['
	atFirst                // after '['
	atComma                // after an element
	atNext                 // after ','
	atElem                 // inside an element
	atTail                 // after ']'
)

// readSize is how much ArrayReader asks r for at least.
const readSize = 32 << 10

// NewArrayReader returns a reader of the array r holds.
func NewArrayReader(r io.Reader, maxElem int) *ArrayReader {
	return &ArrayReader{r: r, maxElem: maxElem}
}

// Next returns the next element (valid until the next call to Next),
// io.EOF after the closing ']' (trailing whitespace allowed, anything else
// is an error), ErrElementTooLarge (errors.Is) for an element over
// maxElem, a *SyntaxError for invalid JSON (also when r ends mid-array:
// it wraps io.ErrUnexpectedEOF), and the reader's own error, wrapped.
// An empty body, or whitespace only, yields io.EOF at once.
func (a *ArrayReader) Next() ([]byte, error) {
	if a.err != nil {
		return nil, a.err
	}
	e, err := a.next()
	if err != nil {
		a.err = err
	}
	return e, err
}

func (a *ArrayReader) next() ([]byte, error) {
	for {
		if a.at == atElem {
			return a.elem()
		}
		for a.start < len(a.buf) && isSpace(a.buf[a.start]) {
			a.start++
		}
		if a.start == len(a.buf) {
			if a.eof {
				switch a.at {
				case atOpen, atTail:
					return nil, io.EOF
				}
				return nil, a.syntax(reasonEOF)
			}
			if err := a.fill(); err != nil {
				return nil, err
			}
			continue
		}
		c := a.buf[a.start]
		switch a.at {
		case atOpen:
			if c != '[' {
				return nil, a.syntax("not a JSON array")
			}
			a.start++
			a.at = atFirst
		case atFirst:
			if c == ']' {
				a.start++
				a.at = atTail
				continue
			}
			a.begin()
		case atComma:
			switch c {
			case ',':
				a.start++
				a.at = atNext
			case ']':
				a.start++
				a.at = atTail
			default:
				return nil, a.syntax("expected ',' or ']'")
			}
		case atNext:
			a.begin()
		case atTail:
			return nil, a.syntax("data after the JSON array")
		}
	}
}

func (a *ArrayReader) begin() {
	a.at = atElem
	a.sc.reset(nil, false, MaxDepth-1) // the array is one level
}

// elem scans on in the element that starts at a.start.
func (a *ArrayReader) elem() ([]byte, error) {
	for {
		a.sc.data, a.sc.final = a.buf[a.start:], a.eof
		switch a.sc.run() {
		case resFail:
			return nil, a.sc.err(a.base + a.start)
		case resDone:
			n := a.sc.pos
			if n > a.maxElem {
				return nil, a.tooLarge()
			}
			e := a.buf[a.start : a.start+n]
			a.start += n
			a.at = atComma
			return e, nil
		}
		// The element reaches at least to the end of the data (a number
		// there may be complete: "]" may follow).
		if len(a.buf)-a.start > a.maxElem {
			return nil, a.tooLarge()
		}
		if err := a.fill(); err != nil {
			return nil, err
		}
	}
}

func (a *ArrayReader) tooLarge() error {
	return fmt.Errorf("element at byte %d over %d bytes: %w", a.base+a.start, a.maxElem, ErrElementTooLarge)
}

func (a *ArrayReader) syntax(reason string) error {
	e := &SyntaxError{Offset: a.base + a.start, Reason: reason}
	if reason == reasonEOF {
		e.Err = io.ErrUnexpectedEOF
	}
	return e
}

// fill reads more of r after the unread part, which it moves to the
// front of buf first; a.eof is set when r ends.
func (a *ArrayReader) fill() error {
	if a.r == nil {
		a.eof = true
		return nil
	}
	if a.start > 0 {
		n := copy(a.buf, a.buf[a.start:])
		a.base += a.start
		a.buf, a.start = a.buf[:n], 0
	}
	if cap(a.buf)-len(a.buf) < readSize {
		grown := make([]byte, len(a.buf), max(2*cap(a.buf), len(a.buf)+readSize))
		copy(grown, a.buf)
		a.buf = grown
	}
	for range 100 {
		n, err := a.r.Read(a.buf[len(a.buf):cap(a.buf)])
		a.buf = a.buf[:len(a.buf)+n]
		if errors.Is(err, io.EOF) {
			a.eof = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("read JSON array: %w", err)
		}
		if n > 0 {
			return nil
		}
	}
	return fmt.Errorf("read JSON array: %w", io.ErrNoProgress)
}
