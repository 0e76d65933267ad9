package envelope

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
)

// The frame's fixed parts; FramedMarshaler documents the layout.
const (
	// FrameHeaderLen is the length of the magic and the length field.
	FrameHeaderLen = 8
	// MaxFrameLen is the largest frame limit: the length field is 32
	// bits, and a frame's length must fit an int on every platform.
	MaxFrameLen = math.MaxInt32
)

// FrameMagic starts every frame: 0xFF never occurs in UTF-8 text, and the
// last byte is the format version.
var FrameMagic = [4]byte{0xFF, 'D', 'S', 0x01}

// EncodeFrame encodes msg as one frame of at most maxFrame bytes, its
// metadata sorted by key.
func EncodeFrame(msg *message.Message, maxFrame int) ([]byte, error) {
	size := FrameHeaderLen + uvarintLen(len(msg.UUID)) + len(msg.UUID) + uvarintLen(len(msg.Metadata)) + len(msg.Payload)
	var keyBuf [8]string
	keys := keyBuf[:0]
	for k, v := range msg.Metadata {
		keys = append(keys, k)
		size += uvarintLen(len(k)) + len(k) + uvarintLen(len(v)) + len(v)
	}
	slices.Sort(keys) // the same message always gives the same bytes
	if size > maxFrame {
		return nil, &Error{Reason: "frame of " + strconv.Itoa(size) + " bytes exceeds MaxFrameBytes " + strconv.Itoa(maxFrame), Err: ErrTooLarge}
	}
	b := make([]byte, FrameHeaderLen, size)
	copy(b, FrameMagic[:])
	binary.BigEndian.PutUint32(b[4:], uint32(size-FrameHeaderLen))
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

// uvarintLen is the length of n as binary.AppendUvarint writes it.
func uvarintLen(n int) int {
	l := 1
	for ; n >= 0x80; n >>= 7 {
		l++
	}
	return l
}

// SplitFrame finds the next whole frame in data, as bufio.SplitFunc does,
// and fails rather than wait for one larger than maxFrame.
func SplitFrame(data []byte, atEOF bool, maxFrame int) (advance int, frame []byte, err error) {
	if len(data) == 0 {
		return 0, nil, nil
	}
	n, err := frameLen(data, maxFrame)
	if err != nil {
		return 0, nil, err
	}
	if n == 0 || n > len(data) {
		if atEOF {
			return 0, nil, &Error{Offset: len(data), Reason: "stream ends inside a frame"}
		}
		return 0, nil, nil
	}
	return n, data[:n:n], nil
}

// frameLen returns the length of the frame data starts with, or 0 if the
// header is not complete yet.
func frameLen(data []byte, maxFrame int) (int, error) {
	head := data[:min(len(data), len(FrameMagic))]
	if !bytes.Equal(head, FrameMagic[:len(head)]) {
		if len(head) == len(FrameMagic) && bytes.Equal(head[:3], FrameMagic[:3]) {
			return 0, &Error{Offset: 3, Reason: "unsupported frame version " + strconv.Itoa(int(head[3]))}
		}
		return 0, &Error{Offset: 0, Reason: "not a frame (bad magic)"}
	}
	if len(data) < FrameHeaderLen {
		return 0, nil
	}
	n := FrameHeaderLen + uint64(binary.BigEndian.Uint32(data[4:]))
	if n > uint64(maxFrame) {
		return 0, &Error{Offset: 4, Reason: "frame of " + strconv.FormatUint(n, 10) + " bytes exceeds MaxFrameBytes " + strconv.Itoa(maxFrame), Err: ErrTooLarge}
	}
	return int(n), nil
}

// DecodeFrame decodes exactly one frame, as EncodeFrame wrote it and
// SplitFrame returns it. It does not keep data.
func DecodeFrame(data []byte, maxFrame int) (*message.Message, error) {
	n, err := frameLen(data, maxFrame)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, &Error{Offset: len(data), Reason: "incomplete frame header"}
	}
	if n != len(data) {
		return nil, &Error{Offset: min(n, len(data)), Reason: "frame length does not match the data (" + strconv.Itoa(len(data)) + " bytes)"}
	}
	r := frameReader{data: data, pos: FrameHeaderLen}
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
		return nil, &Error{Offset: r.pos, Reason: r.reason}
	}
	// One string holds UUID and metadata; the message's strings share it.
	head := string(data[FrameHeaderLen:r.pos])
	str := func(f span) string { return head[f.start-FrameHeaderLen : f.end-FrameHeaderLen] }
	msg := message.NewMessage(str(uuid), append([]byte(nil), data[r.pos:]...))
	for i := 0; i < len(fields); i += 2 {
		k := str(fields[i])
		if _, dup := msg.Metadata[k]; dup {
			return nil, &Error{Offset: fields[i].start, Reason: "duplicate metadata key " + jsonscan.QuoteKey(k)}
		}
		msg.Metadata[k] = str(fields[i+1])
	}
	return msg, nil
}

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
