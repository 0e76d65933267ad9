package jsonscan

import (
	"bytes"
	"slices"
	"sync"
	"unicode/utf8"
)

// Reprint is what the reference server's JavaScript re-printing,
// JSON.stringify(JSON.parse(text)), does to a JSON text.
type Reprint uint8

const (
	// NotJSON: not one JSON value in valid UTF-8 within the depth limit.
	NotJSON Reprint = iota
	// ChangesValue: a reader can tell the re-printed value from the
	// original: a number a double cannot hold (or minus zero), duplicate
	// keys (JavaScript keeps the last), integer-like keys that JavaScript
	// moves to the front of their object.
	ChangesValue
	// SameValue: the same value, perhaps printed differently (whitespace,
	// escapes, number spelling such as 1.50 or 1E5).
	SameValue
	// SameBytes: JavaScript prints exactly these bytes.
	SameBytes
)

// Classify tells what JavaScript's re-printing does to data, which counts
// as NotJSON when nested deeper than maxDepth. Lone surrogate escapes
// count as changing the bytes (not the value), to be safe.
func Classify(data []byte, maxDepth int) Reprint {
	if !utf8.Valid(data) {
		return NotJSON
	}
	an := analyses.Get().(*analysis)
	an.sameBytes, an.sameValue = true, true
	s := scanner{data: data, final: true, maxDepth: maxDepth, stack: an.stack[:0], an: an}
	r := NotJSON
	if s.whole() {
		switch {
		case an.sameBytes && an.sameValue:
			r = SameBytes
		case an.sameValue:
			r = SameValue
		default:
			r = ChangesValue
		}
	}
	an.stack, an.data = s.stack, nil
	an.keys, an.spans, an.objs = an.keys[:0], an.spans[:0], an.objs[:0]
	if cap(an.keys) <= 64<<10 && cap(an.spans) <= 4096 && cap(an.stack) <= 4096 {
		analyses.Put(an)
	}
	return r
}

// analyses recycles buffers: the marshalers classify every payload. A
// new one comes with room for common payloads in one allocation.
var analyses = sync.Pool{New: func() any {
	a := new(analysis)
	a.stack, a.keys, a.spans, a.objs = a.stackBuf[:0], a.keysBuf[:0], a.spansBuf[:0], a.objsBuf[:0]
	return a
}}

// analysis collects what Classify needs while the scanner runs.
type analysis struct {
	sameBytes, sameValue bool
	data                 []byte // being classified
	stack                []byte
	keys                 []byte // decoded escaped keys of the open objects
	spans                []span // into keys, per open object in order
	objs                 []object

	stackBuf [32]byte
	keysBuf  [256]byte
	spansBuf [32]span
	objsBuf  [8]object
}

type span struct{ start, end int }

type object struct {
	first    int  // its first key in spans
	inDigits bool // no key but integer-like ones so far
}

func (a *analysis) open() {
	a.objs = append(a.objs, object{first: len(a.spans), inDigits: true})
}

// key records the key the scanner just passed: its span in the data, or
// in a.keys (negative start) when it had to be decoded.
func (a *analysis) key(s *scanner) {
	a.data = s.data
	k := span{s.tok + 1, s.pos - 1}
	if s.escaped {
		start := len(a.keys)
		a.keys = AppendUnquoted(a.keys, s.data[s.tok:s.pos])
		k = span{-1 - start, len(a.keys)}
	}
	o := &a.objs[len(a.objs)-1]
	if isIntegerLike(a.bytes(k)) {
		// JavaScript lists array-index keys first, in ascending order.
		// Treating every integer-like key so is safe: if those are first
		// and ascending, so are the array indexes among them.
		if !o.inDigits || len(a.spans) > o.first && !lessInteger(a.bytes(a.spans[len(a.spans)-1]), a.bytes(k)) {
			a.sameValue = false
		}
	} else {
		o.inDigits = false
	}
	a.spans = append(a.spans, k)
}

func (a *analysis) bytes(k span) []byte {
	if k.start < 0 {
		return a.keys[-1-k.start : k.end]
	}
	return a.data[k.start:k.end]
}

// close checks the keys of the innermost object for duplicates.
func (a *analysis) close() {
	o := a.objs[len(a.objs)-1]
	if a.sameValue && hasDuplicate(a, a.spans[o.first:]) {
		a.sameValue = false // JavaScript keeps the last value
	}
	a.objs = a.objs[:len(a.objs)-1]
	a.spans = a.spans[:o.first]
	if len(a.objs) == 0 {
		a.keys = a.keys[:0]
	}
}

// isIntegerLike: all digits, no leading zero ("0", "7", "42").
func isIntegerLike(key []byte) bool {
	if len(key) == 0 || key[0] == '0' && len(key) > 1 {
		return false
	}
	for _, c := range key {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func lessInteger(a, b []byte) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return bytes.Compare(a, b) < 0
}

// hasDuplicate reorders keys.
func hasDuplicate(a *analysis, keys []span) bool {
	if len(keys) <= 16 {
		for i := range keys {
			for j := i + 1; j < len(keys); j++ {
				if bytes.Equal(a.bytes(keys[i]), a.bytes(keys[j])) {
					return true
				}
			}
		}
		return false
	}
	slices.SortFunc(keys, func(x, y span) int { return bytes.Compare(a.bytes(x), a.bytes(y)) })
	for i := 1; i < len(keys); i++ {
		if bytes.Equal(a.bytes(keys[i-1]), a.bytes(keys[i])) {
			return true
		}
	}
	return false
}

// number classifies one number token.
func (a *analysis) number(num []byte, integer bool, intDigits int) {
	if integer && intDigits <= 15 {
		// Exact in a double and printed as is, except minus zero.
		if string(num) == "-0" {
			a.sameBytes, a.sameValue = false, false
		}
		return
	}
	if !a.sameValue {
		return // the answer is ChangesValue already
	}
	var buf [40]byte
	printed, ok := jsReprintNumber(buf[:0], num)
	switch {
	case ok && bytes.Equal(printed, num):
	case !ok || !sameDecimal(printed, num):
		a.sameBytes, a.sameValue = false, false
	default:
		a.sameBytes = false
	}
}

// canonicalUEscape: JSON.stringify uses \u only for control characters
// without a short escape, in lower case. (It also escapes lone surrogates;
// those count as not canonical, to be safe.)
func canonicalUEscape(h []byte) bool {
	if h[0] != '0' || h[1] != '0' || h[2] != '0' && h[2] != '1' {
		return false
	}
	if 'A' <= h[3] && h[3] <= 'F' {
		return false
	}
	r, _ := hex4(h)
	return r != '\b' && r != '\t' && r != '\n' && r != '\f' && r != '\r'
}
