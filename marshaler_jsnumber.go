package durablestreams

import (
	"bytes"
	"strconv"
)

func (s *jsonScanner) number() bool {
	d := s.data
	start := s.pos
	if d[s.pos] == '-' {
		s.pos++
	}
	digits := s.pos
	if s.pos >= len(d) {
		return s.failEOF()
	}
	switch c := d[s.pos]; {
	case c == '0':
		s.pos++
	case '1' <= c && c <= '9':
		s.skipDigits()
	default:
		return s.fail("invalid number")
	}
	integer := true
	intDigits := s.pos - digits
	if s.pos < len(d) && d[s.pos] == '.' {
		s.pos++
		if !s.skipDigits() {
			return s.fail("invalid number")
		}
		integer = false
	}
	if s.pos < len(d) && (d[s.pos] == 'e' || d[s.pos] == 'E') {
		s.pos++
		if s.pos < len(d) && (d[s.pos] == '+' || d[s.pos] == '-') {
			s.pos++
		}
		if !s.skipDigits() {
			return s.fail("invalid number")
		}
		integer = false
	}
	if s.canonical {
		num := d[start:s.pos]
		if integer && intDigits <= 15 {
			// Exact in a float64 and printed as is, except minus zero.
			s.canonical = string(num) != "-0"
		} else {
			s.canonical = jsNumberCanonical(num)
		}
	}
	return true
}

func (s *jsonScanner) skipDigits() bool {
	start := s.pos
	for s.pos < len(s.data) && '0' <= s.data[s.pos] && s.data[s.pos] <= '9' {
		s.pos++
	}
	return s.pos > start
}

// jsNumberCanonical reports whether JavaScript prints the number num
// parses to as exactly num.
func jsNumberCanonical(num []byte) bool {
	f, err := strconv.ParseFloat(string(num), 64)
	if err != nil {
		return false
	}
	var buf [40]byte
	return bytes.Equal(appendJSNumber(buf[:0], f), num)
}

// appendJSNumber prints a finite f as ECMAScript's Number::toString does:
// the shortest digits that round-trip (which strconv also finds), placed
// by the spec's rules for plain and exponent notation.
func appendJSNumber(dst []byte, f float64) []byte {
	if f == 0 {
		return append(dst, '0')
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64) // d[.ddd]e±XX
	at := bytes.IndexByte(e, 'e')
	exp, _ := strconv.Atoi(string(e[at+1:]))
	var digitBuf [24]byte
	digits := append(digitBuf[:0], e[0])
	if at > 1 {
		digits = append(digits, e[2:at]...)
	}
	k, n := len(digits), exp+1
	switch {
	case k <= n && n <= 21:
		dst = append(dst, digits...)
		for range n - k {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, digits[:n]...)
		dst = append(dst, '.')
		dst = append(dst, digits[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, '0', '.')
		for range -n {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	default:
		dst = append(dst, digits[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst
}
