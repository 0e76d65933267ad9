package durablestreams

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/defaults"
	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
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
	// empty means application/octet-stream. It must not be a JSON type.
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

const (
	framedMarshalerName = "FramedMarshaler"
	frameHeaderLen      = 8
	maxFrameLen         = math.MaxInt32
)

var frameMagic = [4]byte{0xFF, 'D', 'S', 0x01}

// ContentType returns StreamContentType, or application/octet-stream.
func (m FramedMarshaler) ContentType() string {
	if m.StreamContentType == "" {
		return "application/octet-stream"
	}
	return m.StreamContentType
}

func (m FramedMarshaler) maxFrame() int {
	if m.MaxFrameBytes <= 0 {
		return defaults.MaxFrameBytes
	}
	return min(m.MaxFrameBytes, maxFrameLen)
}

// Marshal encodes msg as one frame.
func (m FramedMarshaler) Marshal(_ string, msg *message.Message) ([]byte, error) {
	size := frameHeaderLen + uvarintLen(len(msg.UUID)) + len(msg.UUID) + uvarintLen(len(msg.Metadata)) + len(msg.Payload)
	var keyBuf [8]string
	keys := keyBuf[:0]
	for k, v := range msg.Metadata {
		keys = append(keys, k)
		size += uvarintLen(len(k)) + len(k) + uvarintLen(len(v)) + len(v)
	}
	slices.Sort(keys) // the same message always gives the same bytes
	if size > m.maxFrame() {
		return nil, &MarshalError{
			Marshaler: framedMarshalerName,
			UUID:      msg.UUID,
			Reason:    "frame of " + strconv.Itoa(size) + " bytes exceeds MaxFrameBytes " + strconv.Itoa(m.maxFrame()),
			Err:       ErrFrameTooLarge,
		}
	}
	b := make([]byte, frameHeaderLen, size)
	copy(b, frameMagic[:])
	binary.BigEndian.PutUint32(b[4:], uint32(size-frameHeaderLen))
	b = appendLenPrefixed(b, msg.UUID)
	b = binary.AppendUvarint(b, uint64(len(msg.Metadata)))
	for _, k := range keys {
		b = appendLenPrefixed(b, k)
		b = appendLenPrefixed(b, msg.Metadata[k])
	}
	return append(b, msg.Payload...), nil
}

func appendLenPrefixed(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func uvarintLen(n int) int {
	l := 1
	for ; n >= 0x80; n >>= 7 {
		l++
	}
	return l
}

// Split finds the next whole frame in data; see FrameSplitter.
func (m FramedMarshaler) Split(data []byte, atEOF bool) (advance int, frame []byte, err error) {
	if len(data) == 0 {
		return 0, nil, nil
	}
	n, err := m.frameLen(data)
	if err != nil {
		return 0, nil, err
	}
	if n == 0 || n > len(data) {
		if atEOF {
			return 0, nil, m.invalid(len(data), "stream ends inside a frame", ErrInvalidFrame)
		}
		return 0, nil, nil
	}
	return n, data[:n:n], nil
}

// frameLen returns the length of the frame data starts with, or 0 if the
// header is not complete yet.
func (m FramedMarshaler) frameLen(data []byte) (int, error) {
	head := data[:min(len(data), len(frameMagic))]
	if !bytes.Equal(head, frameMagic[:len(head)]) {
		if len(head) == len(frameMagic) && bytes.Equal(head[:3], frameMagic[:3]) {
			return 0, m.invalid(3, "unsupported frame version "+strconv.Itoa(int(head[3])), ErrInvalidFrame)
		}
		return 0, m.invalid(0, "not a frame (bad magic)", ErrInvalidFrame)
	}
	if len(data) < frameHeaderLen {
		return 0, nil
	}
	n := frameHeaderLen + uint64(binary.BigEndian.Uint32(data[4:]))
	if n > uint64(m.maxFrame()) {
		return 0, m.invalid(4, "frame of "+strconv.FormatUint(n, 10)+" bytes exceeds MaxFrameBytes "+strconv.Itoa(m.maxFrame()), ErrFrameTooLarge)
	}
	return int(n), nil
}

func (m FramedMarshaler) invalid(offset int, reason string, err error) error {
	return &UnmarshalError{Marshaler: framedMarshalerName, Offset: offset, Reason: reason, Err: err}
}

// Unmarshal decodes exactly one frame, as Marshal wrote it and Split
// returns it. It does not keep data.
func (m FramedMarshaler) Unmarshal(_ string, data []byte) (*message.Message, error) {
	n, err := m.frameLen(data)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, m.invalid(len(data), "incomplete frame header", ErrInvalidFrame)
	}
	if n != len(data) {
		return nil, m.invalid(min(n, len(data)), "frame length does not match the data ("+strconv.Itoa(len(data))+" bytes)", ErrInvalidFrame)
	}
	r := frameReader{data: data, pos: frameHeaderLen}
	uuid := r.field()
	count := r.uvarint()
	// Every entry takes at least two bytes, so no count read from the
	// data can make us allocate more than the data's size.
	if count > uint64(len(data)-r.pos)/2 {
		r.fail("metadata count larger than the frame")
	}
	var fieldsBuf [16]span
	fields := fieldsBuf[:0]
	for i := uint64(0); r.reason == "" && i < count; i++ {
		fields = append(fields, r.field(), r.field())
	}
	if r.reason != "" {
		return nil, m.invalid(r.pos, r.reason, ErrInvalidFrame)
	}
	// One string holds UUID and metadata; the message's strings share it.
	head := string(data[frameHeaderLen:r.pos])
	str := func(f span) string { return head[f.start-frameHeaderLen : f.end-frameHeaderLen] }
	msg := message.NewMessage(str(uuid), append([]byte(nil), data[r.pos:]...))
	for i := 0; i < len(fields); i += 2 {
		k := str(fields[i])
		if _, dup := msg.Metadata[k]; dup {
			return nil, m.invalid(fields[i].start, "duplicate metadata key "+jsonscan.QuoteKey(k), ErrInvalidFrame)
		}
		msg.Metadata[k] = str(fields[i+1])
	}
	return msg, nil
}

type span struct{ start, end int }

// frameReader reads the fields of a frame; after the first problem it
// reads nothing and keeps the reason.
type frameReader struct {
	data   []byte
	pos    int
	reason string
}

func (r *frameReader) fail(reason string) {
	if r.reason == "" {
		r.reason = reason
	}
}

func (r *frameReader) uvarint() uint64 {
	if r.reason != "" {
		return 0
	}
	v, n := binary.Uvarint(r.data[r.pos:])
	if n <= 0 {
		r.fail("bad length field")
		return 0
	}
	r.pos += n
	return v
}

// field reads a length-prefixed field.
func (r *frameReader) field() span {
	n := r.uvarint()
	if n > uint64(len(r.data)-r.pos) {
		r.fail("field longer than the frame")
	}
	if r.reason != "" {
		return span{r.pos, r.pos}
	}
	start := r.pos
	r.pos += int(n)
	return span{start, r.pos}
}
