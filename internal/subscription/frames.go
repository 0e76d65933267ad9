package subscription

import (
	"errors"
	"fmt"
	"io"

	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
)

// frameSource yields the messages of one read, one at a time, as the
// body arrives: a frame is valid until the next call; io.EOF ends the
// read.
type frameSource interface {
	next() ([]byte, error)
}

// jsonFrames reads the elements of a JSON-mode read.
type jsonFrames struct{ a *jsonscan.ArrayReader }

func (j jsonFrames) next() ([]byte, error) {
	e, err := j.a.Next()
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return e, err
	case errors.Is(err, jsonscan.ErrElementTooLarge):
		return nil, fmt.Errorf("%w: a message exceeds MaxReadBytes: %w", errMessageTooLarge, err)
	case isBodyError(err):
		return nil, err
	}
	return nil, fmt.Errorf("%w: JSON-mode body: %w", reader.ErrProtocol, err)
}

// byteFrames cuts byte-mode reads into frames with the Unmarshaler's
// FrameSplitter. A frame may begin in one read and end in a later one:
// the unfinished part stays in buf across reads. buf never holds more
// than one frame's worth (MaxReadBytes) beyond what was handed out.
type byteFrames struct {
	topic    string
	splitter Splitter
	max      int
	buf      []byte
	start    int // buf[start:] is not handed out yet
	body     io.Reader
	atEOF    bool // the stream is closed: no more data after this read
	drained  bool // body returned io.EOF
}

// readChunk is the least byteFrames asks a body for at a time.
const readChunk = 32 << 10

// reset moves on to the next read, keeping an unfinished frame.
func (b *byteFrames) reset(body io.Reader, closed bool) {
	b.body, b.atEOF, b.drained = body, closed, false
}

// pending reports whether an unfinished frame is kept.
func (b *byteFrames) pending() bool { return b.start < len(b.buf) }

func (b *byteFrames) next() ([]byte, error) {
	for {
		rest := b.buf[b.start:]
		if len(rest) > 0 {
			advance, frame, err := b.splitter.Split(rest, b.drained && b.atEOF)
			if err != nil {
				return nil, fmt.Errorf("split frames of %q: %w", b.topic, err)
			}
			if advance > b.max {
				return nil, fmt.Errorf("%w: a frame of %q exceeds MaxReadBytes (%d bytes)", errMessageTooLarge, b.topic, b.max)
			}
			if advance > 0 && advance <= len(rest) {
				b.start += advance
				if frame == nil {
					continue
				}
				return frame, nil
			}
		}
		if len(rest) > b.max {
			return nil, fmt.Errorf("%w: a frame of %q exceeds MaxReadBytes (%d bytes)", errMessageTooLarge, b.topic, b.max)
		}
		if b.drained {
			if b.atEOF && len(rest) > 0 {
				return nil, fmt.Errorf("%q ends in %d bytes that are no whole frame", b.topic, len(rest))
			}
			return nil, io.EOF
		}
		if err := b.fill(); err != nil {
			return nil, err
		}
	}
}

// fill reads more of the body after what is kept. Frames handed out
// earlier are dropped first: the decoder copies what it keeps.
func (b *byteFrames) fill() error {
	n := copy(b.buf, b.buf[b.start:])
	b.buf, b.start = b.buf[:n], 0
	// Ask for at least as much as is kept, so that a large frame takes a
	// few doubling reads rather than one split per small read.
	want := max(readChunk, n)
	if cap(b.buf)-n < want {
		grown := make([]byte, n, n+want)
		copy(grown, b.buf)
		b.buf = grown
	}
	m, err := b.body.Read(b.buf[n:cap(b.buf)])
	b.buf = b.buf[:n+m]
	switch {
	case errors.Is(err, io.EOF):
		b.drained = true
	case err != nil:
		return err
	}
	return nil
}

// errMessageTooLarge: one message of a read exceeds MaxReadBytes.
var errMessageTooLarge = errors.New("message too large")

func isBodyError(err error) bool {
	var be *reader.BodyError
	return errors.As(err, &be)
}
