package jsonscan

import (
	"errors"
	"strconv"
)

// ErrElementTooLarge: an array element is larger than the ArrayReader's
// limit. The reader stops there rather than buffering without bound.
var ErrElementTooLarge = errors.New("JSON array element too large")

// SyntaxError is input that is not (the expected) JSON. Offset counts
// bytes from the start of the input (of the whole stream for an
// ArrayReader). Err is io.ErrUnexpectedEOF when the input ended too soon,
// else nil.
type SyntaxError struct {
	Offset int
	Reason string
	Err    error
}

func (e *SyntaxError) Error() string {
	return "invalid JSON: " + e.Reason + " at byte " + strconv.Itoa(e.Offset)
}

func (e *SyntaxError) Unwrap() error { return e.Err }
