package durablestreams

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
)

// decodeBatch bounds how many messages are decoded ahead of delivery.
const decodeBatch = 256

// decoded is one frame of a read, unmarshalled ahead of its delivery.
type decoded struct {
	frame []byte
	msg   *message.Message
	err   error // the Unmarshaler's; the poison policy applies at delivery
}

// batch is a run of frames of one read, in stream order.
type batch struct {
	chunk reader.Chunk // without Data
	// first and last: the batch opens or ends its read.
	first, last bool
	// carried: a frame begun in an earlier read comes first (byte mode);
	// partial: one is left unfinished after this read (on last only).
	carried, partial bool
	frames           []decoded
	err              error // the read failed; no frames
}

// decoder reads, splits and unmarshals ahead of delivery, so that the
// next request and the decoding overlap with waiting for acks. It is at
// most one read and about two batches ahead; the subscription owns it.
type decoder struct {
	sub *subscription
	r   *reader.Reader
	// pass: the first frames were consumed before; they are not decoded.
	pass int
	out  chan<- batch
}

func (d *decoder) run(ctx context.Context) {
	defer close(d.out)
	var buf []byte // byte mode: the start of a frame that has not ended yet
	for {
		chunk, err := d.r.Next(ctx)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				d.send(ctx, batch{err: err})
			}
			return
		}
		carried := len(buf) > 0
		var frames [][]byte
		if chunk.JSON {
			frames, err = jsonscan.SplitArray(chunk.Data)
			if err != nil {
				d.send(ctx, batch{err: fmt.Errorf("%w: JSON-mode body: %w", reader.ErrProtocol, err)})
				return
			}
		} else {
			buf = append(buf, chunk.Data...)
			frames, buf, err = d.sub.split(buf, chunk.Closed)
			if err != nil {
				d.send(ctx, batch{err: err})
				return
			}
		}
		chunk.Data = nil
		for i := 0; i == 0 || i < len(frames); i += decodeBatch {
			b := batch{chunk: chunk, first: i == 0, carried: carried}
			end := min(i+decodeBatch, len(frames))
			if end == len(frames) {
				b.last, b.partial = true, len(buf) > 0
			}
			b.frames = make([]decoded, 0, end-i)
			for _, f := range frames[i:end] {
				b.frames = append(b.frames, d.decode(f))
			}
			if !d.send(ctx, b) {
				return
			}
		}
	}
}

func (d *decoder) decode(frame []byte) decoded {
	if d.pass > 0 {
		d.pass--
		return decoded{frame: frame}
	}
	msg, err := d.sub.s.config.Unmarshaler.Unmarshal(d.sub.topic, frame)
	if err == nil && msg == nil {
		err = errors.New("unmarshaler returned no message")
	}
	return decoded{frame: frame, msg: msg, err: err}
}

func (d *decoder) send(ctx context.Context, b batch) bool {
	select {
	case d.out <- b:
		return true
	case <-ctx.Done():
		return false
	}
}
