package subscription

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
)

// A batch closes at decodeBatch messages or decodeBatchBytes, whichever
// comes first: the decoder is about two batches ahead of delivery, so
// this bounds the memory a read takes besides its largest message.
const (
	decodeBatch      = 256
	decodeBatchBytes = 1 << 20
)

// decoded is one frame of a read, unmarshalled ahead of its delivery.
type decoded struct {
	frame []byte
	msg   *message.Message
	err   error // the Unmarshaler's; the poison policy applies at delivery
}

// batch is a run of frames of one read, in stream order.
type batch struct {
	chunk reader.Chunk // without Body
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
	sub *Subscription
	r   *reader.Reader
	// pass: the first frames were consumed before; they are not decoded.
	pass int
	out  chan<- batch
}

func (d *decoder) run(ctx context.Context) {
	defer close(d.out)
	cfg := &d.sub.cfg
	splitter, _ := cfg.Unmarshaler.(Splitter)
	bytesMode := &byteFrames{topic: d.sub.cfg.Topic, splitter: splitter, max: int(cfg.MaxReadBytes)}
	for {
		chunk, err := d.r.Next(ctx)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				d.send(ctx, batch{err: err})
			}
			return
		}
		if err := ModeMismatch(d.sub.cfg.Topic, chunk.JSON, "", cfg.ContentType); err != nil && chunk.HasData {
			d.send(ctx, batch{err: err})
			return
		}
		var src frameSource
		carried := false
		if chunk.JSON {
			src = jsonFrames{jsonscan.NewArrayReader(chunk.Body, int(cfg.MaxReadBytes))}
		} else {
			if splitter == nil {
				d.send(ctx, batch{err: fmt.Errorf("%w: the stream is in byte mode, but the Unmarshaler %T is no FrameSplitter", protocol.ErrInvalidConfig, cfg.Unmarshaler)})
				return
			}
			carried = bytesMode.pending()
			bytesMode.reset(chunk.Body, chunk.Closed)
			src = bytesMode
		}
		chunk.Body = nil
		if !d.decodeRead(ctx, chunk, carried, src, bytesMode) {
			return
		}
	}
}

// decodeRead decodes one read's frames in batches; false ends the decoder.
func (d *decoder) decodeRead(ctx context.Context, chunk reader.Chunk, carried bool, src frameSource, bytesMode *byteFrames) bool {
	b := batch{chunk: chunk, first: true, carried: carried}
	size := 0
	for {
		frame, err := src.next()
		if errors.Is(err, io.EOF) {
			b.last = true
			b.partial = !chunk.JSON && bytesMode.pending()
			return d.send(ctx, b)
		}
		if err != nil {
			// What was decoded before the failure is delivered first; a
			// body cut short is read again from the position reached.
			if len(b.frames) > 0 && !d.send(ctx, b) {
				return false
			}
			d.send(ctx, batch{err: err})
			return false
		}
		b.frames = append(b.frames, d.decode(append([]byte(nil), frame...)))
		size += len(frame)
		if len(b.frames) >= decodeBatch || size >= decodeBatchBytes {
			if !d.send(ctx, b) {
				return false
			}
			b = batch{chunk: chunk}
			size = 0
		}
	}
}

func (d *decoder) decode(frame []byte) decoded {
	if d.pass > 0 {
		d.pass--
		return decoded{frame: frame}
	}
	msg, err := d.sub.cfg.Unmarshaler.Unmarshal(d.sub.cfg.Topic, frame)
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

// ModeMismatch fails for a stream in JSON mode read by a byte-mode
// Unmarshaler, or the other way round.
func ModeMismatch(topic string, streamJSON bool, streamType, configured string) error {
	if streamJSON == protocol.IsJSON(configured) {
		return nil
	}
	if streamType == "" {
		streamType = "byte mode"
		if streamJSON {
			streamType = "JSON mode"
		}
	}
	return fmt.Errorf("%w: stream %q is %s, but the subscriber reads %s (set Unmarshaler or ContentType to match the stream)",
		protocol.ErrContentTypeMismatch, topic, strconv.Quote(streamType), strconv.Quote(configured))
}
