package durablestreams

import (
	"bytes"
	"strconv"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/defaults"
)

// LinesMarshaler writes each payload as one line ending in "\n" to a
// byte-mode stream, for log-style streams that people and line-oriented
// tools read. UUID and metadata are not written; Unmarshal gives each
// message a new UUID and no metadata.
//
// Marshal fails with ErrPayloadHasNewline for a payload containing "\n"
// or "\r". Split also accepts lines ending in "\r\n" from other writers,
// and at the end of a stream a last line without "\n".
//
// The zero value is ready to use.
type LinesMarshaler struct {
	// StreamContentType is the content type of the streams it writes;
	// empty means text/plain. It must not be a JSON type.
	StreamContentType string
	// MaxFrameBytes bounds a line with its line break in both directions,
	// as in FramedMarshaler. Default (0): 16 MiB.
	MaxFrameBytes int
}

var (
	_ marshalerUnmarshaler = LinesMarshaler{}
	_ FrameSplitter        = LinesMarshaler{}
)

const linesMarshalerName = "LinesMarshaler"

// ContentType returns StreamContentType, or text/plain.
func (m LinesMarshaler) ContentType() string {
	if m.StreamContentType == "" {
		return "text/plain"
	}
	return m.StreamContentType
}

func (m LinesMarshaler) maxFrame() int {
	if m.MaxFrameBytes <= 0 {
		return defaults.MaxFrameBytes
	}
	return m.MaxFrameBytes
}

// Marshal returns the payload followed by "\n".
func (m LinesMarshaler) Marshal(_ string, msg *message.Message) ([]byte, error) {
	if i := bytes.IndexAny(msg.Payload, "\r\n"); i >= 0 {
		return nil, &MarshalError{Marshaler: linesMarshalerName, UUID: msg.UUID, Reason: "line break at byte " + strconv.Itoa(i), Err: ErrPayloadHasNewline}
	}
	if len(msg.Payload)+1 > m.maxFrame() {
		return nil, &MarshalError{
			Marshaler: linesMarshalerName,
			UUID:      msg.UUID,
			Reason:    "line of " + strconv.Itoa(len(msg.Payload)+1) + " bytes exceeds MaxFrameBytes " + strconv.Itoa(m.maxFrame()),
			Err:       ErrFrameTooLarge,
		}
	}
	b := make([]byte, len(msg.Payload)+1)
	copy(b, msg.Payload)
	b[len(msg.Payload)] = '\n'
	return b, nil
}

// Split returns the next line with its line break; see FrameSplitter.
func (m LinesMarshaler) Split(data []byte, atEOF bool) (advance int, frame []byte, err error) {
	limit := min(len(data), m.maxFrame())
	if i := bytes.IndexByte(data[:limit], '\n'); i >= 0 {
		return i + 1, data[: i+1 : i+1], nil
	}
	if len(data) >= m.maxFrame() {
		return 0, nil, &UnmarshalError{
			Marshaler: linesMarshalerName,
			Reason:    "no line break in the first " + strconv.Itoa(m.maxFrame()) + " bytes (MaxFrameBytes)",
			Err:       ErrFrameTooLarge,
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data[:len(data):len(data)], nil
	}
	return 0, nil, nil
}

// Unmarshal decodes one line, with or without its line break. It does not
// keep data.
func (m LinesMarshaler) Unmarshal(_ string, data []byte) (*message.Message, error) {
	line := bytes.TrimSuffix(data, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		return nil, &UnmarshalError{Marshaler: linesMarshalerName, Offset: i, Reason: "more than one line", Err: ErrInvalidFrame}
	}
	return message.NewMessage(watermill.NewUUID(), append([]byte(nil), line...)), nil
}
