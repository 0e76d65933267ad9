package reader

import (
	"encoding/json"
	"fmt"
)

// maxSplitDepth is encoding/json's nesting limit: the splitter accepts
// what json.Unmarshal accepts.
const maxSplitDepth = 10000

// SplitJSONArray splits a JSON-mode read body (one JSON array) into its
// elements, which share memory with body. An empty body has no elements.
// It validates as it goes, in one pass: a read of a large backlog is one
// body of every message.
func SplitJSONArray(body []byte) ([]json.RawMessage, error) {
	s := splitter{data: body}
	s.ws()
	if s.pos == len(body) {
		return nil, nil
	}
	if body[s.pos] != '[' {
		return nil, fmt.Errorf("%w: JSON-mode body is not a JSON array", ErrProtocol)
	}
	s.pos++
	s.ws()
	var elems []json.RawMessage
	if s.pos < len(body) && body[s.pos] == ']' {
		s.pos++
	} else {
		for {
			start := s.pos
			if !s.value(1) {
				return nil, s.err()
			}
			elems = append(elems, body[start:s.pos:s.pos])
			s.ws()
			if s.pos == len(body) {
				return nil, s.err()
			}
			c := body[s.pos]
			s.pos++
			if c == ']' {
				break
			}
			if c != ',' {
				s.pos--
				return nil, s.errAt("expected ',' or ']'")
			}
			s.ws()
		}
	}
	s.ws()
	if s.pos != len(body) {
		return nil, s.errAt("data after the JSON array")
	}
	return elems, nil
}

// splitter is a strict RFC 8259 scanner (as strict as encoding/json;
// like it, it leaves UTF-8 to whoever decodes the strings).
type splitter struct {
	data   []byte
	pos    int
	reason string
}

func (s *splitter) fail(reason string) bool {
	if s.reason == "" {
		s.reason = reason
	}
	return false
}

func (s *splitter) err() error {
	if s.reason == "" {
		s.reason = "unexpected end of JSON"
	}
	return fmt.Errorf("%w: JSON-mode body: %s at byte %d", ErrProtocol, s.reason, s.pos)
}

func (s *splitter) errAt(reason string) error {
	s.reason = reason
	return s.err()
}

func (s *splitter) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *splitter) value(depth int) bool {
	if s.pos >= len(s.data) {
		return s.fail("unexpected end of JSON")
	}
	switch c := s.data[s.pos]; {
	case c == '"':
		return s.str()
	case c == '{' || c == '[':
		if depth >= maxSplitDepth {
			return s.fail("nested too deeply")
		}
		return s.container(c, depth+1)
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

func (s *splitter) literal(lit string) bool {
	if len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		return s.fail("invalid literal")
	}
	s.pos += len(lit)
	return true
}

// container scans an object or array whose opening byte is at s.pos.
func (s *splitter) container(open byte, depth int) bool {
	closing := byte(']')
	if open == '{' {
		closing = '}'
	}
	s.pos++
	s.ws()
	if s.pos < len(s.data) && s.data[s.pos] == closing {
		s.pos++
		return true
	}
	for {
		if open == '{' {
			if s.pos >= len(s.data) || s.data[s.pos] != '"' {
				return s.fail("expected object key")
			}
			if !s.str() {
				return false
			}
			s.ws()
			if s.pos >= len(s.data) || s.data[s.pos] != ':' {
				return s.fail("expected ':'")
			}
			s.pos++
			s.ws()
		}
		if !s.value(depth) {
			return false
		}
		s.ws()
		if s.pos >= len(s.data) {
			return s.fail("unexpected end of JSON")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.ws()
		case closing:
			s.pos++
			return true
		default:
			return s.fail("expected ',' or '" + string(closing) + "'")
		}
	}
}

// str scans a string whose opening quote is at s.pos.
func (s *splitter) str() bool {
	d := s.data
	for s.pos++; s.pos < len(d); {
		c := d[s.pos]
		switch {
		case c == '"':
			s.pos++
			return true
		case c < 0x20:
			return s.fail("control character in string")
		case c != '\\':
			s.pos++
			continue
		}
		if s.pos+1 >= len(d) {
			break
		}
		switch d[s.pos+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			s.pos += 2
		case 'u':
			if s.pos+6 > len(d) {
				return s.fail("unexpected end of JSON")
			}
			for _, h := range d[s.pos+2 : s.pos+6] {
				if !isHex(h) {
					return s.fail("invalid \\u escape")
				}
			}
			s.pos += 6
		default:
			return s.fail("invalid escape")
		}
	}
	return s.fail("unexpected end of JSON")
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *splitter) number() bool {
	d := s.data
	if d[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(d) && d[s.pos] == '0':
		s.pos++
	case s.pos < len(d) && '1' <= d[s.pos] && d[s.pos] <= '9':
		s.digits()
	default:
		return s.fail("invalid number")
	}
	if s.pos < len(d) && d[s.pos] == '.' {
		s.pos++
		if !s.digits() {
			return s.fail("invalid number")
		}
	}
	if s.pos < len(d) && (d[s.pos] == 'e' || d[s.pos] == 'E') {
		s.pos++
		if s.pos < len(d) && (d[s.pos] == '+' || d[s.pos] == '-') {
			s.pos++
		}
		if !s.digits() {
			return s.fail("invalid number")
		}
	}
	return true
}

// digits consumes [0-9]* and reports whether there was one.
func (s *splitter) digits() bool {
	start := s.pos
	for s.pos < len(s.data) && '0' <= s.data[s.pos] && s.data[s.pos] <= '9' {
		s.pos++
	}
	return s.pos > start
}
