package durablestreams

import (
	"github.com/ThreeDotsLabs/watermill/message"
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
