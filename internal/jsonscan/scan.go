// Package jsonscan validates, splits and classifies JSON text in one pass,
// without decoding it: the marshalers ask whether a payload survives the
// reference server's JavaScript re-printing, and the Subscriber splits
// read bodies (JSON arrays of messages) into their elements.
//
// It is as strict as encoding/json (RFC 8259), with the same nesting limit
// (MaxDepth); Validate and Classify also require valid UTF-8, which
// encoding/json does not.
package jsonscan

import (
	"io"
	"unicode/utf8"
)

// Nesting limits. The reference server parses and re-prints every
// JSON-mode message recursively, and Node 20 fails a whole batch past about
// 4,000 levels, so what the marshalers write stays far below that. Reads
// accept what Go's encoding/json accepts.
const (
	// MaxDepth is encoding/json's nesting limit, which reads accept.
	MaxDepth = 10000
	// MaxWriteDepth is the nesting the marshalers write as JSON.
	MaxWriteDepth = 512
)

// state is what the scanner expects next.
type state uint8

const (
	stValue      state = iota // a value
	stFirstElem               // after '[': a value or ']'
	stFirstKey                // after '{': a key or '}'
	stKey                     // after ',' in an object: a key
	stColon                   // after a key
	stAfterValue              // after a value in a container: ',' or its end
	stString                  // inside a string value
	stKeyString               // inside a key
	stDone                    // the value is complete
)

type result uint8

const (
	resDone result = iota // the value ended
	resMore               // the data ended first; more may follow
	resFail               // invalid; reason is set
)

// scanner is a resumable state machine over one JSON value. With final
// unset, the end of data means "more to come": run returns resMore at a
// point it can resume from after data grows (numbers, literals and
// escapes cut by the end are scanned again).
type scanner struct {
	data     []byte
	pos      int
	final    bool
	maxDepth int
	state    state
	stack    []byte // open containers, '[' or '{', innermost last
	tok      int    // where the current string began (its quote)
	escaped  bool   // the current string has escapes
	reason   string
	an       *analysis // nil unless classifying
}

func (s *scanner) reset(data []byte, final bool, maxDepth int) {
	s.data, s.pos, s.final, s.maxDepth, s.state = data, 0, final, maxDepth, stValue
	s.stack, s.escaped, s.reason = s.stack[:0], false, ""
}

func (s *scanner) fail(reason string) result {
	if s.reason == "" {
		s.reason = reason
	}
	return resFail
}

// end is the end of data where a token or value must go on.
func (s *scanner) end() result {
	if s.final {
		return s.fail(reasonEOF)
	}
	return resMore
}

const reasonEOF = "unexpected end of JSON"

func (s *scanner) err(base int) *SyntaxError {
	e := &SyntaxError{Offset: base + s.pos, Reason: s.reason}
	if s.reason == reasonEOF {
		e.Err = io.ErrUnexpectedEOF
	}
	return e
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *scanner) skipSpace() {
	d, i := s.data, s.pos
	for i < len(d) && isSpace(d[i]) {
		i++
	}
	if s.an != nil && i != s.pos {
		s.an.sameBytes = false
	}
	s.pos = i
}

// run scans until the value ends, the data ends or an error: each pass of
// its loop is one step of the state machine (a string's rest, or the
// token at s.pos).
func (s *scanner) run() result {
	d := s.data
	for {
		switch s.state {
		case stDone:
			return resDone
		case stString, stKeyString:
			if r := s.stringRest(); r != resDone {
				return r
			}
			continue
		}
		if s.pos >= len(d) || d[s.pos] <= ' ' {
			s.skipSpace()
			if s.pos >= len(d) {
				return s.end()
			}
		}
		if r := s.token(d[s.pos]); r != resDone {
			return r
		}
	}
}

// stringRest scans the rest of the string at s.tok, a key or a value, and
// moves past it. resDone: the string ended.
func (s *scanner) stringRest() result {
	if r := s.str(); r != resDone {
		return r
	}
	if s.state == stKeyString {
		if s.an != nil {
			s.an.key(s)
		}
		s.state = stColon
	} else {
		s.valueEnd()
	}
	return resDone
}

// token scans what starts with c at s.pos in the state the scanner is in.
// resDone: the scan goes on.
func (s *scanner) token(c byte) result {
	switch s.state {
	case stFirstElem:
		if c == ']' {
			s.pos++
			s.pop()
			return resDone
		}
		fallthrough
	case stValue:
		return s.value(c)
	case stFirstKey:
		if c == '}' {
			s.pos++
			s.pop()
			return resDone
		}
		fallthrough
	case stKey:
		if c != '"' {
			return s.fail("expected object key")
		}
		return s.member()
	case stColon:
		if c != ':' {
			return s.fail("expected ':'")
		}
		s.pos++
		s.state = stValue
	case stAfterValue:
		return s.afterValue(c)
	}
	return resDone
}

// afterValue scans c after a value in a container: a ',' and what
// usually follows it at once (a key, a value), or the container's end.
// resDone: the scan goes on.
func (s *scanner) afterValue(c byte) result {
	d := s.data
	top := s.stack[len(s.stack)-1]
	switch {
	case c == ',':
		s.pos++
		s.state = stValue
		if top == '{' {
			s.state = stKey
		}
		if s.pos >= len(d) {
			return resDone
		}
		switch c := d[s.pos]; {
		case c == '"' && top == '{':
			return s.member()
		case c > ' ' && top == '[':
			return s.value(c)
		}
	case c == top+2: // ']' is '['+2, '}' is '{'+2
		s.pos++
		s.pop()
	case top == '{':
		return s.fail("expected ',' or '}'")
	default:
		return s.fail("expected ',' or ']'")
	}
	return resDone
}

// member scans a key at s.pos, its ':' and the value if it follows at
// once (a start, for a container).
func (s *scanner) member() result {
	s.tok, s.escaped = s.pos, false
	s.pos++
	s.state = stKeyString
	if r := s.str(); r != resDone {
		return r
	}
	if s.an != nil {
		s.an.key(s)
	}
	s.state = stColon
	d := s.data
	if s.pos+1 < len(d) && d[s.pos] == ':' { // the usual case
		s.pos++
		s.state = stValue
		if c := d[s.pos]; c > ' ' {
			return s.value(c)
		}
	}
	return resDone
}

// value starts the value whose first byte c is at s.pos.
func (s *scanner) value(c byte) result {
	switch {
	case c == '{' || c == '[':
		if len(s.stack) >= s.maxDepth {
			return s.fail("nested too deeply")
		}
		s.stack = append(s.stack, c)
		s.pos++
		s.state = stFirstElem
		if c == '{' {
			s.state = stFirstKey
			if s.an != nil {
				s.an.open()
			}
		}
		return resDone
	case c == '"':
		s.tok, s.escaped = s.pos, false
		s.pos++
		s.state = stString
		if r := s.str(); r != resDone {
			return r
		}
		s.valueEnd()
		return resDone
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return s.fail("invalid character")
}

func (s *scanner) literal(lit string) result {
	rest := s.data[s.pos:]
	n := min(len(rest), len(lit))
	if string(rest[:n]) != lit[:n] {
		return s.fail("invalid literal")
	}
	if n < len(lit) {
		return s.end()
	}
	s.pos += len(lit)
	s.valueEnd()
	return resDone
}

func (s *scanner) pop() {
	if s.an != nil && s.stack[len(s.stack)-1] == '{' {
		s.an.close()
	}
	s.stack = s.stack[:len(s.stack)-1]
	s.valueEnd()
}

func (s *scanner) valueEnd() {
	s.state = stAfterValue
	if len(s.stack) == 0 {
		s.state = stDone
	}
}

// plain marks the bytes a string holds without a closer look.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str scans on inside a string up to and including its closing quote.
func (s *scanner) str() result {
	d := s.data
	i := s.pos
	for {
		for i < len(d) && plain[d[i]] {
			i++
		}
		if i >= len(d) {
			s.pos = i
			return s.end()
		}
		switch c := d[i]; {
		case c == '"':
			s.pos = i + 1
			return resDone
		case c < 0x20:
			s.pos = i
			return s.fail("control character in string")
		}
		// a backslash
		s.escaped = true
		s.pos = i
		if i+1 >= len(d) {
			return s.end()
		}
		switch d[i+1] {
		case '"', '\\', 'b', 'f', 'n', 'r', 't':
			i += 2
		case '/':
			if s.an != nil {
				s.an.sameBytes = false
			}
			i += 2
		case 'u':
			n := min(len(d)-i-2, 4)
			hex := d[i+2 : i+2+n]
			if _, ok := hex4(hex); !ok {
				return s.fail("invalid \\u escape")
			}
			if n < 4 {
				return s.end()
			}
			if s.an != nil && !canonicalUEscape(hex) {
				s.an.sameBytes = false
			}
			i += 6
		default:
			return s.fail("invalid escape")
		}
	}
}

// hex4 decodes up to four hex digits; ok is false at a non-hex byte.
func hex4(h []byte) (r rune, ok bool) {
	for _, c := range h {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// Validate returns nil if data is one JSON value in valid UTF-8, with
// optional whitespace around it and nested at most maxDepth levels, and a
// *SyntaxError otherwise.
func Validate(data []byte, maxDepth int) error {
	if !utf8.Valid(data) {
		return &SyntaxError{Offset: invalidUTF8At(data), Reason: "not valid UTF-8"}
	}
	var s scanner
	s.reset(data, true, maxDepth)
	if !s.whole() {
		return s.err(0)
	}
	return nil
}

// whole scans data as one value with optional whitespace around it.
func (s *scanner) whole() bool {
	if s.run() == resFail {
		return false
	}
	s.skipSpace()
	if s.pos != len(s.data) {
		s.fail("data after the JSON value")
		return false
	}
	return true
}

func invalidUTF8At(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(data)
}
