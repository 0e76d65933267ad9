package durablestreams

import (
	"bytes"
	"slices"
	"sync"
	"unicode/utf8"
)

// Limits on JSON nesting. The reference server parses and re-prints every
// JSON-mode message recursively, and Node 20 fails a whole batch past about
// 4,000 levels, so what we write stays far below that. Reads accept what
// Go's encoding/json accepts.
const (
	maxWriteDepth = 512
	maxReadDepth  = 10000
)

// jsonScanner validates JSON (RFC 8259, UTF-8 checked by the caller) and,
// when canonical starts true, also tells whether the text is exactly what
// JavaScript's JSON.stringify(JSON.parse(text)) prints. The reference server
// re-prints every JSON-mode message that way, so only such text comes back
// byte for byte.
type jsonScanner struct {
	data      []byte
	pos       int
	depth     int
	maxDepth  int
	canonical bool
	keys      []span // keys of the objects being scanned, innermost last
	reason    string
}

func (s *jsonScanner) fail(reason string) bool {
	if s.reason == "" {
		s.reason = reason
	}
	return false
}

func (s *jsonScanner) failEOF() bool { return s.fail("unexpected end of JSON") }

func (s *jsonScanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
			s.canonical = false
		default:
			return
		}
	}
}

func (s *jsonScanner) value() bool {
	if s.pos >= len(s.data) {
		return s.failEOF()
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object()
	case c == '[':
		return s.array()
	case c == '"':
		_, ok := s.str()
		return ok
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

func (s *jsonScanner) literal(lit string) bool {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(lit)) {
		return s.fail("invalid literal")
	}
	s.pos += len(lit)
	return true
}

func (s *jsonScanner) enter() bool {
	s.depth++
	if s.depth > s.maxDepth {
		return s.fail("nested too deeply")
	}
	s.pos++
	s.ws()
	return true
}

// endOf consumes ',' (more to come) or the closing byte.
func (s *jsonScanner) endOf(closing byte) (more, ok bool) {
	s.ws()
	if s.pos >= len(s.data) {
		return false, s.failEOF()
	}
	switch s.data[s.pos] {
	case ',':
		s.pos++
		s.ws()
		return true, true
	case closing:
		s.pos++
		s.depth--
		return false, true
	}
	if closing == '}' {
		return false, s.fail("expected ',' or '}'")
	}
	return false, s.fail("expected ',' or ']'")
}

func (s *jsonScanner) array() bool {
	if !s.enter() {
		return false
	}
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		s.depth--
		return true
	}
	for {
		if !s.value() {
			return false
		}
		more, ok := s.endOf(']')
		if !more {
			return ok
		}
	}
}

func (s *jsonScanner) object() bool {
	if !s.enter() {
		return false
	}
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		s.depth--
		return true
	}
	first := len(s.keys)
	for {
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.fail("expected object key")
		}
		start := s.pos
		if _, ok := s.str(); !ok {
			return false
		}
		if s.canonical {
			if isIndexLike(s.data[start+1 : s.pos-1]) {
				// JavaScript moves array-index keys to the front.
				s.canonical = false
			}
			s.keys = append(s.keys, span{start + 1, s.pos - 1})
		}
		s.ws()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.fail("expected ':'")
		}
		s.pos++
		s.ws()
		if !s.value() {
			return false
		}
		more, ok := s.endOf('}')
		if !ok {
			return false
		}
		if !more {
			break
		}
	}
	if s.canonical && hasDuplicate(s.data, s.keys[first:]) {
		// JavaScript keeps only the last of duplicate keys.
		s.canonical = false
	}
	s.keys = s.keys[:first]
	return true
}

// isIndexLike reports whether a raw key looks like a JavaScript array
// index ("0", "7", "42"); all-digit keys without a leading zero are
// treated so whatever their size.
func isIndexLike(key []byte) bool {
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

// hasDuplicate compares raw keys, which is enough for canonical text: it
// has one spelling per string. It reorders keys.
func hasDuplicate(data []byte, keys []span) bool {
	key := func(i int) []byte { return data[keys[i].start:keys[i].end] }
	if len(keys) <= 16 {
		for i := range keys {
			for j := i + 1; j < len(keys); j++ {
				if bytes.Equal(key(i), key(j)) {
					return true
				}
			}
		}
		return false
	}
	slices.SortFunc(keys, func(a, b span) int {
		return bytes.Compare(data[a.start:a.end], data[b.start:b.end])
	})
	for i := 1; i < len(keys); i++ {
		if bytes.Equal(key(i-1), key(i)) {
			return true
		}
	}
	return false
}

// keyBuffers recycles jsonScanner.keys: Marshal runs for every message.
var keyBuffers = sync.Pool{New: func() any { return new([]span) }}

// str scans a string at s.pos and reports whether it holds escapes.
func (s *jsonScanner) str() (escaped, ok bool) {
	d := s.data
	s.pos++
	for s.pos < len(d) {
		c := d[s.pos]
		switch {
		case c == '"':
			s.pos++
			return escaped, true
		case c < 0x20:
			return escaped, s.fail("control character in string")
		case c != '\\':
			s.pos++
			continue
		}
		escaped = true
		if s.pos+1 >= len(d) {
			return escaped, s.failEOF()
		}
		switch d[s.pos+1] {
		case '"', '\\', 'b', 'f', 'n', 'r', 't':
			s.pos += 2
		case '/':
			s.canonical = false
			s.pos += 2
		case 'u':
			if s.pos+6 > len(d) {
				return escaped, s.failEOF()
			}
			hex := d[s.pos+2 : s.pos+6]
			if _, ok := hex4(hex); !ok {
				return escaped, s.fail("invalid \\u escape")
			}
			if s.canonical && !canonicalUEscape(hex) {
				s.canonical = false
			}
			s.pos += 6
		default:
			return escaped, s.fail("invalid escape")
		}
	}
	return escaped, s.failEOF()
}

func hex4(h []byte) (rune, bool) {
	var r rune
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

// canonicalUEscape: JSON.stringify uses \u only for control characters
// without a short escape, in lower case. (It also escapes lone surrogates;
// we treat those as not canonical, to be safe.)
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

// scanJSON checks that data is one JSON value, optionally surrounded by
// whitespace, nested at most maxDepth levels. It returns a reason and
// offset when it is not.
func scanJSON(data []byte, maxDepth int) (reason string, offset int) {
	if !utf8.Valid(data) {
		return "not valid UTF-8", 0
	}
	s := jsonScanner{data: data, maxDepth: maxDepth}
	s.ws()
	if s.value() {
		s.ws()
		if s.pos == len(data) {
			return "", 0
		}
		s.fail("data after the JSON value")
	}
	return s.reason, s.pos
}

// jsCanonical reports whether payload is one JSON value printed exactly as
// JavaScript's JSON.stringify prints it, so that the reference server
// returns it unchanged. Array-index object keys, \u escapes of anything
// but control characters, and nesting deeper than maxWriteDepth count as
// not canonical.
func jsCanonical(payload []byte) bool {
	if len(payload) == 0 || !utf8.Valid(payload) {
		return false
	}
	keys := keyBuffers.Get().(*[]span)
	s := jsonScanner{data: payload, maxDepth: maxWriteDepth, canonical: true, keys: (*keys)[:0]}
	ok := s.value() && s.pos == len(payload) && s.canonical
	if cap(s.keys) <= 1024 {
		*keys = s.keys
		keyBuffers.Put(keys)
	}
	return ok
}

// appendJSString appends s (valid UTF-8) as a JSON string escaped exactly as
// JSON.stringify escapes it.
func appendJSString[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		start = i + 1
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			const hexDigits = "0123456789abcdef"
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendUnquoted appends the value of the JSON string raw (quotes
// included, already validated by jsonScanner.str). Lone surrogates become
// U+FFFD, as in encoding/json.
func appendUnquoted(dst, raw []byte) []byte {
	raw = raw[1 : len(raw)-1]
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			dst = append(dst, raw[i:j]...)
			i = j
			continue
		}
		switch raw[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, _ := hex4(raw[i+2 : i+6])
			i += 6
			if utf8.ValidRune(r) {
				dst = utf8.AppendRune(dst, r)
				continue
			}
			if r < 0xdc00 && i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
				if lo, _ := hex4(raw[i+2 : i+6]); 0xdc00 <= lo && lo <= 0xdfff {
					dst = utf8.AppendRune(dst, 0x10000+(r-0xd800)<<10+(lo-0xdc00))
					i += 6
					continue
				}
			}
			dst = utf8.AppendRune(dst, utf8.RuneError)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, raw[i+1])
		}
		i += 2
	}
	return dst
}
