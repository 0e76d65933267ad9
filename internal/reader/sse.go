package reader

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// sseConn is an open SSE response. It outlives one Next call, so it has a
// context of its own, cancelled by Close, by the idle timer, or by the
// context of a Next call that is waiting on it.
type sseConn struct {
	body   io.ReadCloser
	br     *bufio.Reader
	base64 bool
	cancel context.CancelFunc
	idle   *time.Timer
	once   sync.Once
}

func (c *sseConn) close() {
	c.once.Do(func() {
		c.idle.Stop()
		c.cancel()
		_ = c.body.Close()
	})
}

func (r *Reader) openSSE(ctx context.Context) error {
	connCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	idle := time.AfterFunc(r.cfg.LiveTimeout, cancel)
	target := r.readURL("sse")
	req, err := r.cfg.Client.NewRequest(connCtx, http.MethodGet, target, nil)
	if err != nil {
		idle.Stop()
		cancel()
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	stop := context.AfterFunc(ctx, cancel)
	resp, err := r.cfg.Client.Do(req)
	stop()
	if err != nil {
		idle.Stop()
		cancel()
		return &networkError{fmt.Errorf("open SSE on %s: %w", protocol.RedactURL(r.cfg.URL), err)}
	}
	if resp.StatusCode != http.StatusOK {
		err := r.statusError(resp, target)
		protocol.DrainClose(resp.Body)
		idle.Stop()
		cancel()
		return err
	}
	if mt := protocol.MediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		protocol.DrainClose(resp.Body)
		idle.Stop()
		cancel()
		return fmt.Errorf("open SSE on %s: %w: content type %q", protocol.RedactURL(r.cfg.URL), ErrProtocol, mt)
	}
	r.sse = &sseConn{
		body:   resp.Body,
		br:     bufio.NewReaderSize(resp.Body, 64<<10),
		base64: strings.EqualFold(resp.Header.Get(protocol.HeaderSSEDataEncoding), "base64"),
		cancel: cancel,
		idle:   idle,
	}
	return nil
}

// stepSSE reads events until a control event closes a batch with data,
// or the stream closes. A connection that ends after a control event is
// reopened (ok false, no error): at once when it brought something new
// (the offset moved), after the reader's pause for an empty answer when
// it did not. One that fails before any control event is a network error,
// retried with backoff. A batch or event over MaxBodyBytes is read again
// by a catch-up GET, which hands its body over as it arrives.
func (r *Reader) stepSSE(ctx context.Context) (Chunk, bool, error) {
	if r.sse == nil {
		if err := r.openSSE(ctx); err != nil {
			return Chunk{}, false, err
		}
	}
	conn := r.sse
	stop := context.AfterFunc(ctx, conn.cancel)
	defer stop()

	var (
		parts      [][]byte
		size       int64
		sawControl bool
		start      = r.offset
	)
	for {
		ev, err := readSSEEvent(conn.br, int(r.cfg.MaxBodyBytes))
		if err != nil {
			r.Close()
			if errors.Is(err, ErrBodyTooLarge) {
				return r.catchUpInstead()
			}
			if sawControl {
				r.progressed = r.offset != start
				return Chunk{}, false, nil
			}
			return Chunk{}, false, &networkError{fmt.Errorf("SSE on %s: %w", protocol.RedactURL(r.cfg.URL), err)}
		}
		conn.idle.Reset(r.cfg.LiveTimeout)
		switch ev.Type {
		case "data":
			data, err := decodeSSEData(ev.Data, conn.base64)
			if err != nil {
				r.Close()
				return Chunk{}, false, err
			}
			size += int64(len(data))
			if size > r.cfg.MaxBodyBytes {
				r.Close()
				return r.catchUpInstead()
			}
			parts = append(parts, data)
		case "control":
			chunk, ok, err := r.closeBatch(ev.Data, parts)
			if err != nil || ok {
				return chunk, ok, err
			}
			sawControl, parts, size = true, nil, 0
		}
	}
}

// closeBatch takes in the control event (data) that closes the batch of
// data events parts: ok when it is a chunk to hand over. An error, or a
// closed stream, closes the connection.
func (r *Reader) closeBatch(control []byte, parts [][]byte) (Chunk, bool, error) {
	c, err := parseControl(control)
	if err != nil {
		r.Close()
		return Chunk{}, false, err
	}
	data, err := r.joinParts(parts)
	if err != nil {
		r.Close()
		return Chunk{}, false, err
	}
	h := readHeaders{NextOffset: c.StreamNextOffset, Cursor: c.StreamCursor, UpToDate: c.UpToDate || c.StreamClosed, Closed: c.StreamClosed}
	hasData := len(data) > 0 && !(protocol.IsJSON(r.contentType) && isEmptyJSONArray(data))
	chunk, ok, err := r.advance(h, bytes.NewReader(data), hasData)
	if err != nil {
		r.Close()
		return Chunk{}, false, err
	}
	if chunk.Closed {
		r.Close()
	}
	return chunk, ok, nil
}

// catchUpInstead reads what an SSE batch too large for MaxBodyBytes held
// by catch-up GETs from the offset before it: their bodies are handed
// over as they arrive, so only each message is bounded. SSE resumes once
// they are up to date. The answer counts as empty and new to nothing, so
// a server that keeps doing this is not asked again in a spin.
func (r *Reader) catchUpInstead() (Chunk, bool, error) {
	r.upToDate = false
	r.progressed = false
	return Chunk{}, false, nil
}

func (r *Reader) joinParts(parts [][]byte) ([]byte, error) {
	if len(parts) == 0 {
		return nil, nil
	}
	if protocol.IsJSON(r.contentType) {
		return joinJSONArrays(parts)
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out, nil
}
