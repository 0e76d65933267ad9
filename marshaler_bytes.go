package durablestreams

import (
	"bytes"
	"strconv"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/defaults"
	"github.com/durablestreams/watermill-durablestreams/internal/envelope"
)

// FramedMarshaler writes messages to byte-mode streams as self-delimiting
// binary frames, so any payload (binary, with newlines, empty) keeps its
// bytes, UUID and metadata. A frame is:
//
//	0xFF 'D' 'S' 0x01    magic and format version
//	uint32               length of the rest, big endian
//	uvarint + bytes      UUID
//	uvarint              number of metadata entries, then for each:
//	uvarint + bytes      key
//	uvarint + bytes      value
//	bytes                payload, up to the end of the frame
//
// The 0xFF byte never occurs in UTF-8 text, so a stream written by
// another producer is reported as ErrInvalidFrame at its first byte.
//
// The zero value is ready to use.
type FramedMarshaler struct {
	// StreamContentType is the content type of the streams it writes;
	// empty means application/octet-stream. It must not be a JSON type
	// (application/json or a +json type): PublisherConfig.Validate
	// refuses one with ErrInvalidConfig.
	StreamContentType string
	// MaxFrameBytes bounds frames in both directions: Marshal refuses
	// larger messages and Split refuses to wait for larger frames, so a
	// hostile stream cannot make a reader buffer without bound.
	// Default (0): 16 MiB.
	MaxFrameBytes int
}

var (
	_ marshalerUnmarshaler = FramedMarshaler{}
	_ FrameSplitter        = FramedMarshaler{}
)

const framedMarshalerName = "FramedMarshaler"

// ContentType returns StreamContentType, or application/octet-stream.
func (m FramedMarshaler) ContentType() string {
	if m.StreamContentType == "" {
		return "application/octet-stream"
	}
	return m.StreamContentType
}

// maxFrame is MaxFrameBytes with its default, within what a frame's
// length field can say.
func (m FramedMarshaler) maxFrame() int {
	if m.MaxFrameBytes <= 0 {
		return defaults.MaxFrameBytes
	}
	return min(m.MaxFrameBytes, envelope.MaxFrameLen)
}

// Marshal encodes msg as one frame.
func (m FramedMarshaler) Marshal(_ string, msg *message.Message) ([]byte, error) {
	if msg == nil {
		return nil, nilMessageError(framedMarshalerName)
	}
	frame, err := envelope.EncodeFrame(msg, m.maxFrame())
	if err != nil { // the size limit is all EncodeFrame checks
		_, reason := offsetReason(err)
		return nil, &MarshalError{Marshaler: framedMarshalerName, UUID: msg.UUID, Reason: reason, Err: ErrFrameTooLarge}
	}
	return frame, nil
}

// Split finds the next whole frame in data; see FrameSplitter.
func (m FramedMarshaler) Split(data []byte, atEOF bool) (advance int, frame []byte, err error) {
	advance, frame, err = envelope.SplitFrame(data, atEOF, m.maxFrame())
	if err != nil {
		return 0, nil, newUnmarshalError(framedMarshalerName, err, ErrInvalidFrame)
	}
	return advance, frame, nil
}

// Unmarshal decodes exactly one frame, as Marshal wrote it and Split
// returns it. It does not keep data.
func (m FramedMarshaler) Unmarshal(_ string, data []byte) (*message.Message, error) {
	msg, err := envelope.DecodeFrame(data, m.maxFrame())
	if err != nil {
		return nil, newUnmarshalError(framedMarshalerName, err, ErrInvalidFrame)
	}
	return msg, nil
}

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
	// empty means text/plain. It must not be a JSON type (application/json
	// or a +json type): PublisherConfig.Validate refuses one with
	// ErrInvalidConfig.
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
	if msg == nil {
		return nil, nilMessageError(linesMarshalerName)
	}
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
