// Package envelope holds the wire formats behind the root package's
// JSONMarshaler and FramedMarshaler: the JSON envelope
// ({"uuid":…,"metadata":{…},"payload":…}) and the binary frame, each with
// its encoder and decoder. The marshalers, their options and their errors
// stay in the root package, which documents both formats; this package
// fails with *Error, which the marshalers report as theirs.
package envelope

import (
	"errors"
	"strconv"
)

// ErrTooLarge is the Err of an *Error caused by a size limit rather than
// by the form of the data.
var ErrTooLarge = errors.New("too large")

// Error is a message the encoders refuse or data the decoders reject:
// what is wrong (Reason) and where in the data (Offset). Err is
// ErrTooLarge or nil.
type Error struct {
	Offset int
	Reason string
	Err    error
}

func (e *Error) Error() string {
	return "at byte " + strconv.Itoa(e.Offset) + ": " + e.Reason
}

func (e *Error) Unwrap() error { return e.Err }

// span is a field's bytes, [start, end) in a buffer.
type span struct{ start, end int }
