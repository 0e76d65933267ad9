package reader

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// stepGET sends one catch-up GET, or a long-poll once caught up. The
// answer's body is not read here: the chunk hands it over as it arrives
// (a catch-up answer may hold the whole backlog).
func (r *Reader) stepGET(ctx context.Context) (Chunk, bool, error) {
	live := ""
	timeout := r.cfg.Client.RequestTimeout
	if r.upToDate {
		live = "long-poll"
		timeout = r.cfg.LiveTimeout
	}
	reqCtx, cancel := context.WithCancel(ctx)
	stall := newStallTimer(timeout, cancel)
	target := r.readURL(live)
	req, err := r.cfg.Client.NewRequest(reqCtx, http.MethodGet, target, nil)
	if err != nil {
		stall.stop()
		cancel()
		return Chunk{}, false, err
	}
	resp, err := r.cfg.Client.Do(req)
	stall.pause()
	if err != nil {
		stall.stop()
		cancel()
		return Chunk{}, false, &networkError{fmt.Errorf("read %s: %w", protocol.RedactURL(r.cfg.URL), err)}
	}
	body := &getBody{rc: resp.Body, stall: stall, cancel: cancel}
	h, err := r.readAnswer(resp, target)
	if err != nil {
		body.Close()
		return Chunk{}, false, err
	}
	var data *bufio.Reader
	if resp.StatusCode == http.StatusOK {
		if ct := resp.Header.Get("Content-Type"); ct != "" {
			r.contentType = ct
		}
		data = bufio.NewReaderSize(body, 32<<10)
		if r.emptyBody(data) {
			data = nil
		}
	}
	if data == nil {
		body.Close()
		return r.advance(h, nil, false)
	}
	chunk, ok, err := r.advance(h, data, true)
	if err != nil {
		body.Close()
		return Chunk{}, false, err
	}
	r.body = body
	return chunk, ok, nil
}

// readAnswer checks the status and position headers of a read answer.
func (r *Reader) readAnswer(resp *http.Response, target string) (readHeaders, error) {
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent:
	default:
		return readHeaders{}, r.statusError(resp, target)
	}
	if resp.Header.Get(protocol.HeaderNextOffset) == "" {
		// §5.6: every read answer carries the next offset; a web server's
		// 200 to anything (Caddy outside its stream root) does not.
		return readHeaders{}, fmt.Errorf("%w: GET %s answered %d %s without %s (%w)", protocol.ErrNotStreamEndpoint,
			protocol.RedactURL(r.cfg.URL), resp.StatusCode, http.StatusText(resp.StatusCode), protocol.HeaderNextOffset, ErrProtocol)
	}
	h, err := parseReadHeaders(resp.Header)
	if err != nil {
		return readHeaders{}, fmt.Errorf("read %s: %w", protocol.RedactURL(r.cfg.URL), err)
	}
	return h, nil
}

// emptyPeek is how far emptyBody looks for data: an answer with more
// whitespace than that is handed over, and simply yields no message.
const emptyPeek = 64

// emptyBody reports whether a 200 answer carries no message: an empty
// body, or "[]" in JSON mode. An error while peeking counts as data: the
// consumer meets it when it reads.
func (r *Reader) emptyBody(br *bufio.Reader) bool {
	peek, err := br.Peek(emptyPeek)
	if err != nil && !errors.Is(err, io.EOF) {
		return false
	}
	if len(peek) == 0 {
		return true
	}
	return protocol.IsJSON(r.contentType) && len(peek) < emptyPeek && isEmptyJSONArray(peek)
}

// BodyError is a read answer whose body was cut short (by the network,
// or by a stall longer than the request timeout): reading again from the
// last consumed position picks up where it ended.
type BodyError struct{ Err error }

func (e *BodyError) Error() string { return "read body: " + e.Err.Error() }
func (e *BodyError) Unwrap() error { return e.Err }

// getBody is the body of a GET answer, read while the consumer takes its
// messages. A stall timer bounds each read from the network, not the
// whole answer: a slow consumer never cuts its own read short.
type getBody struct {
	rc     io.ReadCloser
	stall  *stallTimer
	cancel context.CancelFunc
	once   sync.Once
}

func (b *getBody) Read(p []byte) (int, error) {
	b.stall.resume()
	n, err := b.rc.Read(p)
	b.stall.pause()
	if err != nil && !errors.Is(err, io.EOF) {
		err = &BodyError{Err: err}
	}
	return n, err
}

func (b *getBody) Close() {
	b.once.Do(func() {
		b.stall.stop()
		protocol.DrainClose(b.rc)
		b.cancel()
	})
}

// stallTimer cancels a request that waits on the network longer than
// timeout at a time (zero: never).
type stallTimer struct {
	timeout time.Duration
	t       *time.Timer
}

func newStallTimer(timeout time.Duration, cancel context.CancelFunc) *stallTimer {
	s := &stallTimer{timeout: timeout}
	if timeout > 0 {
		s.t = time.AfterFunc(timeout, cancel)
	}
	return s
}

func (s *stallTimer) resume() {
	if s.t != nil {
		s.t.Reset(s.timeout)
	}
}

func (s *stallTimer) pause() {
	if s.t != nil {
		s.t.Stop()
	}
}

func (s *stallTimer) stop() { s.pause() }
