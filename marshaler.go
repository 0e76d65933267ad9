package durablestreams

import (
	"errors"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/envelope"
	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
)

// Marshaler turns a Watermill message into one stream message.
// JSONMarshaler (the default), RawJSONMarshaler, CloudEventsMarshaler,
// FramedMarshaler and LinesMarshaler implement it, each with its
// Unmarshaler.
//
// In JSON mode (a content type of application/json) the bytes must be one
// JSON value; the publisher sends each as one element of a JSON array, so
// the server keeps every message separate. In byte mode the server keeps no
// boundaries: the bytes must be a frame that the matching Unmarshaler's
// Split can find again in the concatenated stream.
type Marshaler interface {
	// ContentType is the content type of streams this marshaler writes.
	ContentType() string
	// Marshal encodes msg for topic. It must not keep msg or the result.
	Marshal(topic string, msg *message.Message) ([]byte, error)
}

// Unmarshaler rebuilds Watermill messages from stream messages.
type Unmarshaler interface {
	// Unmarshal decodes one stream message: one element of a JSON-mode
	// read, or one frame returned by Split in byte mode. It must not keep
	// data, which the caller may reuse.
	Unmarshal(topic string, data []byte) (*message.Message, error)
}

// FrameSplitter finds message boundaries in byte-mode streams. Split has
// the contract of bufio.SplitFunc: it returns how many bytes to consume
// and the frame to pass to Unmarshal, (0, nil, nil) when data holds no
// whole frame yet, or an error when data can never become a frame. A
// non-nil empty frame is a message too. Split must bound the frame size
// it waits for, so that a reader's buffer cannot grow without limit.
type FrameSplitter interface {
	Split(data []byte, atEOF bool) (advance int, frame []byte, err error)
}

// marshalerUnmarshaler is a matching pair, as the Publisher and Subscriber
// configs take it.
type marshalerUnmarshaler interface {
	Marshaler
	Unmarshaler
}

// Errors of the marshalers. Marshal returns them wrapped in a
// *MarshalError, Unmarshal and Split in an *UnmarshalError; test for them
// with errors.Is.
var (
	// ErrInvalidEnvelope: a JSON-mode message is not an envelope written
	// by JSONMarshaler, for example raw JSON from another producer.
	ErrInvalidEnvelope = errors.New("not a JSONMarshaler envelope")
	// ErrInvalidUTF8: a UUID or metadata key or value is not valid UTF-8,
	// which a JSON envelope cannot carry unchanged.
	ErrInvalidUTF8 = errors.New("not valid UTF-8")
	// ErrPayloadNotJSON: RawJSONMarshaler got a payload that is not one
	// JSON value the server accepts (or read back data that is not JSON).
	ErrPayloadNotJSON = errors.New("payload is not JSON")
	// ErrInvalidFrame: byte-mode data that is not a frame of the
	// marshaler reading it: another writer, corruption or a truncated
	// stream.
	ErrInvalidFrame = errors.New("invalid frame")
	// ErrFrameTooLarge: a frame is larger than the marshaler's
	// MaxFrameBytes. Split returns it rather than buffering without bound.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrInvalidCloudEvent: CloudEventsMarshaler cannot write a message as
	// a CloudEvent (no UUID, event type or source; an invalid time), or
	// read data that is not a CloudEvent 1.0 in structured JSON mode.
	ErrInvalidCloudEvent = errors.New("not a valid CloudEvent")
	// ErrPayloadHasNewline: LinesMarshaler got a payload containing "\n"
	// or "\r", which would split it into several messages.
	ErrPayloadHasNewline = errors.New("payload contains a line break")
)

// MarshalError is a message a marshaler cannot encode. Err is one of the
// sentinels above, or ErrNilMessage for a nil message.
type MarshalError struct {
	Marshaler string // e.g. "JSONMarshaler"
	UUID      string // of the message
	Reason    string // what in the message is wrong, e.g. "line break at byte 5"
	Err       error  // one of the sentinels above
}

func (e *MarshalError) Error() string {
	return e.Marshaler + ": cannot marshal message " + strconv.Quote(e.UUID) + ": " + e.Reason + ": " + e.Err.Error()
}

func (e *MarshalError) Unwrap() error { return e.Err }

// nilMessageError is marshaler's error for a nil message.
func nilMessageError(marshaler string) error {
	return &MarshalError{Marshaler: marshaler, Reason: "no message", Err: ErrNilMessage}
}

// UnmarshalError is data a marshaler cannot decode. Err is one of the
// sentinels above; Offset is where in the data the problem was found.
type UnmarshalError struct {
	Marshaler string // e.g. "JSONMarshaler"
	Offset    int    // byte offset in the data handed to the unmarshaler
	Reason    string // what in the data is wrong
	Err       error  // one of the sentinels above
}

func (e *UnmarshalError) Error() string {
	return e.Marshaler + ": at byte " + strconv.Itoa(e.Offset) + ": " + e.Reason + ": " + e.Err.Error()
}

func (e *UnmarshalError) Unwrap() error { return e.Err }

// newUnmarshalError reports err, from the decoding machinery in internal/,
// as marshaler's: at the offset and for the reason err gives, with
// ErrFrameTooLarge when a size limit is the problem, else sentinel.
func newUnmarshalError(marshaler string, err, sentinel error) error {
	offset, reason := offsetReason(err)
	if errors.Is(err, envelope.ErrTooLarge) {
		sentinel = ErrFrameTooLarge
	}
	return &UnmarshalError{Marshaler: marshaler, Offset: offset, Reason: reason, Err: sentinel}
}

// offsetReason is where in the data and why the machinery failed with
// err: an *envelope.Error or *jsonscan.SyntaxError says both, any other
// error only why. The machinery returns them unwrapped, so a type switch
// finds them, and unlike errors.As allocates nothing: a Split that fails
// at once stays cheap.
func offsetReason(err error) (int, string) {
	switch e := err.(type) {
	case *envelope.Error:
		return e.Offset, e.Reason
	case *jsonscan.SyntaxError:
		return e.Offset, e.Reason
	}
	return 0, err.Error()
}
