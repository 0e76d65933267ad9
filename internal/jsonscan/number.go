package jsonscan

import (
	"bytes"
	"strconv"
)

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() result {
	d := s.data
	start := s.pos
	i := start
	if d[i] == '-' {
		i++
	}
	intStart := i
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		i = digits(d, i)
	case i == len(d):
		return s.end()
	default:
		s.pos = i
		return s.fail("invalid number")
	}
	intDigits := i - intStart
	integer := true
	if i < len(d) && d[i] == '.' {
		integer = false
		if j := digits(d, i+1); j > i+1 {
			i = j
		} else if j == len(d) {
			return s.end()
		} else {
			s.pos = j
			return s.fail("invalid number")
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		integer = false
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if j := digits(d, i); j > i {
			i = j
		} else if j == len(d) {
			return s.end()
		} else {
			s.pos = j
			return s.fail("invalid number")
		}
	}
	if i == len(d) && !s.final {
		return resMore // more digits may follow
	}
	s.pos = i
	if s.an != nil {
		s.an.number(d[start:i], integer, intDigits)
	}
	s.valueEnd()
	return resDone
}

func digits(d []byte, i int) int {
	for i < len(d) && '0' <= d[i] && d[i] <= '9' {
		i++
	}
	return i
}

// jsReprintNumber appends what JavaScript prints for the JSON number num;
// ok is false when that is not a number (beyond a double's range it
// becomes Infinity, which JSON.stringify prints as null).
func jsReprintNumber(dst, num []byte) ([]byte, bool) {
	f, err := strconv.ParseFloat(string(num), 64)
	if err != nil && f != 0 { // out of range (underflow to 0 is a number)
		return dst, false
	}
	return appendJSNumber(dst, f), true
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

// sameDecimal reports whether two JSON numbers denote the same decimal
// value, minus zero being different from zero.
func sameDecimal(a, b []byte) bool {
	var abuf, bbuf [64]byte
	an, ad, ae := decimal(a, abuf[:0])
	bn, bd, be := decimal(b, bbuf[:0])
	return an == bn && bytes.Equal(ad, bd) && (len(ad) == 0 || ae == be)
}

// decimal splits a valid JSON number into its sign, its significant
// digits (no leading or trailing zeros; none for zero) and the exponent
// of the last of them. Exponents too large for an int saturate, which
// only numbers no double holds reach. buf is scratch space.
func decimal(num, buf []byte) (neg bool, digits []byte, exp int) {
	if num[0] == '-' {
		neg, num = true, num[1:]
	}
	end := bytes.IndexAny(num, "eE")
	if end < 0 {
		end = len(num)
	} else {
		x := num[end+1:]
		sign := 1
		switch x[0] {
		case '-':
			sign, x = -1, x[1:]
		case '+':
			x = x[1:]
		}
		for _, c := range x {
			if exp > 1<<40 {
				break
			}
			exp = exp*10 + int(c-'0')
		}
		exp *= sign
	}
	mant := num[:end]
	if dot := bytes.IndexByte(mant, '.'); dot >= 0 {
		exp -= len(mant) - dot - 1
		buf = append(append(buf, mant[:dot]...), mant[dot+1:]...)
		mant = buf
	}
	mant = bytes.TrimLeft(mant, "0")
	n := len(mant)
	mant = bytes.TrimRight(mant, "0")
	exp += n - len(mant)
	return neg, mant, exp
}
