// Package reader reads a Durable Stream from an offset: catch-up GETs until
// the tail, then live tailing by long-poll or SSE. It knows nothing of
// Watermill; the subscriber turns its chunks into messages.
package reader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

// Mode is how the reader tails a stream once it has caught up.
type Mode int

const (
	// LongPoll holds a GET open until data arrives or the server times out.
	LongPoll Mode = iota
	// SSE keeps one server-sent-events connection open.
	SSE
)

// Offsets with a meaning of their own.
const (
	OffsetBeginning = "-1"
	OffsetNow       = "now"
)

// Defaults for Config.
const (
	DefaultLiveTimeout  = 65 * time.Second
	DefaultMaxBodyBytes = 64 << 20
)

// Config configures a Reader.
type Config struct {
	// URL of the stream.
	URL string
	// Offset to start after: OffsetBeginning, OffsetNow, or an offset the
	// server returned.
	Offset string
	Mode   Mode
	// Client sends the requests; its RequestTimeout bounds catch-up GETs.
	Client *protocol.Client
	// LiveTimeout bounds a long-poll request, and the silence on an SSE
	// connection before it is dropped and reopened. It must exceed the
	// server's long-poll timeout (the reference server's default is 30s).
	LiveTimeout time.Duration
	// RetryPolicy bounds retries of network errors, 429 and 5xx.
	RetryPolicy retry.Policy
	// MaxBodyBytes bounds one SSE event or batch; one over it is read
	// again by catch-up GETs. A GET answer is handed over as it arrives
	// (Chunk.Body): its consumer bounds each message.
	MaxBodyBytes int64
	// StopAtTail ends the read (io.EOF) once it is up to date, instead
	// of tailing: a catch-up read of what the stream holds now.
	StopAtTail bool
}

// Chunk is one read: the data after Offset, up to NextOffset.
type Chunk struct {
	// Body is the data: a JSON array in JSON mode, raw bytes otherwise. It
	// is read as it arrives, and valid until the next Next or Close. A
	// failure while reading it is a *BodyError.
	Body io.Reader
	// HasData: the read carries data (a chunk that only ends a closed
	// stream has none).
	HasData bool
	// JSON tells whether the stream is in JSON mode.
	JSON bool
	// Offset is where the chunk starts (the offset that was asked for).
	Offset string
	// NextOffset is where the next read starts, as the server said.
	NextOffset string
	UpToDate   bool
	// Closed: the stream is closed and this chunk reaches its end (EOF).
	Closed bool
}

// Reader reads one stream. It is not safe for concurrent use.
type Reader struct {
	cfg         Config
	offset      string
	cursor      string
	upToDate    bool
	closed      bool
	contentType string
	sse         *sseConn
	body        *getBody // of the last chunk, closed by the next Next
	emptyStreak int
	// progressed: the last empty answer still moved the reader on (it
	// reached the tail, or an SSE connection moved the offset), so the
	// next request may follow at once. An answer that brought nothing new
	// is paused after when it came fast (pauseAfterEmpty).
	progressed bool
}

// New returns a Reader; it sends nothing until Next.
func New(cfg Config) (*Reader, error) {
	if cfg.URL == "" {
		return nil, errors.New("reader needs a stream URL")
	}
	if cfg.Offset == "" {
		cfg.Offset = OffsetBeginning
	}
	if cfg.Offset != OffsetBeginning && cfg.Offset != OffsetNow {
		if err := validateOffset(cfg.Offset); err != nil {
			return nil, fmt.Errorf("start offset: %w", err)
		}
	}
	if cfg.Client == nil {
		cfg.Client = &protocol.Client{}
	}
	if cfg.LiveTimeout <= 0 {
		cfg.LiveTimeout = DefaultLiveTimeout
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return &Reader{cfg: cfg, offset: cfg.Offset}, nil
}

// Close drops an open SSE connection and the body of the last chunk.
func (r *Reader) Close() {
	r.closeBody()
	if r.sse != nil {
		r.sse.close()
		r.sse = nil
	}
}

// Next returns the next chunk with data, or the chunk that ends a closed
// stream (Closed set, maybe without data). After that it returns io.EOF,
// as it does at the tail with StopAtTail.
// Empty answers (a long-poll timeout) are absorbed, never returned.
// Retryable failures are retried under the RetryPolicy; 404 and 410 are
// final (errors.Is ErrStreamNotFound / ErrStreamGone).
func (r *Reader) Next(ctx context.Context) (Chunk, error) {
	r.closeBody()
	for {
		if r.closed || (r.cfg.StopAtTail && r.upToDate) {
			return Chunk{}, io.EOF
		}
		var (
			chunk Chunk
			ok    bool
			took  time.Duration
		)
		err := protocol.Retry(ctx, r.cfg.RetryPolicy, r.cfg.Client.RefusedPoll, func(int) protocol.Try {
			if err := ctx.Err(); err != nil {
				return protocol.Try{Err: err}
			}
			began := time.Now()
			c, got, err := r.step(ctx)
			took = time.Since(began)
			if err != nil {
				return readTry(err)
			}
			chunk, ok = c, got
			return protocol.Try{}
		})
		if err != nil {
			if ctx.Err() != nil {
				return Chunk{}, ctx.Err()
			}
			return Chunk{}, err
		}
		if ok {
			r.emptyStreak = 0
			return chunk, nil
		}
		if err := r.pauseAfterEmpty(ctx, took); err != nil {
			return Chunk{}, err
		}
	}
}

// readTry classifies a failed read for protocol.Retry: a read changes
// nothing, so it is never "maybe written".
func readTry(err error) protocol.Try {
	var ra *retryAfterError
	if errors.As(err, &ra) {
		return protocol.Try{Err: err, Retryable: true, RetryAfter: ra.after}
	}
	return protocol.Try{Err: err, Retryable: retryable(err)}
}

func (r *Reader) closeBody() {
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
}

// minEmptyInterval: an empty answer faster than this is no long-poll
// timeout but a server that answers at once; back off so as not to spin.
const minEmptyInterval = 100 * time.Millisecond

func (r *Reader) pauseAfterEmpty(ctx context.Context, took time.Duration) error {
	if took >= minEmptyInterval || r.progressed {
		r.emptyStreak = 0
		return nil
	}
	r.emptyStreak++
	return protocol.Sleep(ctx, r.cfg.RetryPolicy.Backoff(r.emptyStreak))
}

// step sends one request (or reads one SSE batch). ok is false when the
// answer carried no data.
func (r *Reader) step(ctx context.Context) (Chunk, bool, error) {
	if r.upToDate && r.cfg.Mode == SSE {
		return r.stepSSE(ctx)
	}
	return r.stepGET(ctx)
}

func (r *Reader) readURL(live string) string {
	q := url.Values{}
	q.Set("offset", r.offset)
	if live != "" {
		q.Set("live", live)
		if r.cursor != "" {
			q.Set("cursor", r.cursor)
		}
	}
	return r.cfg.URL + "?" + q.Encode()
}

// advance records a position the server returned. An end before the
// offset asked for means the stream no longer reaches that offset (it was
// deleted and created again): offsets only grow, and sort as strings.
func (r *Reader) advance(h readHeaders, body io.Reader, hasData bool) (Chunk, bool, error) {
	if r.offset != OffsetBeginning && r.offset != OffsetNow && h.NextOffset < r.offset {
		return Chunk{}, false, &PastTailError{Offset: r.offset, Tail: h.NextOffset}
	}
	if body == nil {
		body = bytes.NewReader(nil)
	}
	chunk := Chunk{
		Body:       body,
		HasData:    hasData,
		JSON:       protocol.IsJSON(r.contentType),
		Offset:     r.offset,
		NextOffset: h.NextOffset,
		UpToDate:   h.UpToDate,
		Closed:     h.Closed && h.UpToDate,
	}
	r.progressed = h.UpToDate && !r.upToDate
	r.offset = h.NextOffset
	if h.Cursor != "" {
		r.cursor = h.Cursor
	}
	r.upToDate = r.upToDate || h.UpToDate
	r.closed = chunk.Closed
	return chunk, hasData || chunk.Closed, nil
}

func isEmptyJSONArray(data []byte) bool {
	for _, b := range data {
		switch b {
		case '[', ']', ' ', '\t', '\r', '\n':
		default:
			return false
		}
	}
	return true
}

// statusError maps a failed read answer onto the library's errors.
func (r *Reader) statusError(resp *http.Response, rawURL string) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	err := r.cfg.Client.AnswerError(http.MethodGet, protocol.RedactURL(rawURL), resp.StatusCode, protocol.ErrorBody(body), 0)
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: %w", protocol.ErrStreamNotFound, err)
	case resp.StatusCode == http.StatusGone:
		return fmt.Errorf("%w: %w", protocol.ErrStreamGone, err)
	case resp.StatusCode == http.StatusBadRequest:
		return &rejectedError{err}
	case protocol.RetryableStatus(resp.StatusCode):
		return &retryAfterError{err: err, after: protocol.RetryAfter(resp.Header, time.Minute)}
	}
	return err
}

// retryAfterError is a retryable status with the server's Retry-After.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// rejectedError is a read answered 400, which PROTOCOL.md gives for a
// malformed offset; a server may also answer so for one past its tail
// (see Rejected). It adds nothing to the text of the answer's error or to
// what errors.Is and errors.As find in it.
type rejectedError struct{ err error }

func (e *rejectedError) Error() string { return e.err.Error() }
func (e *rejectedError) Unwrap() error { return e.err }

// Rejected reports whether a read failed because the server refused the
// offset it asked for (400): the caller's position may be one the stream
// cannot honour. The status is told by the reader, which read it, rather
// than read back out of the error users get.
func Rejected(err error) bool {
	var re *rejectedError
	return errors.As(err, &re)
}

// networkError is a transport failure: the request may be sent again.
type networkError struct{ err error }

func (e *networkError) Error() string { return e.err.Error() }
func (e *networkError) Unwrap() error { return e.err }

func retryable(err error) bool {
	var ra *retryAfterError
	var ne *networkError
	return errors.As(err, &ra) || errors.As(err, &ne)
}

// ReadData reads the whole of a chunk's body, for callers whose reads are
// small records: at most max bytes (ErrBodyTooLarge beyond), and a body
// cut short is a *BodyError.
func (c Chunk) ReadData(max int64) ([]byte, error) {
	if c.Body == nil {
		return nil, nil
	}
	data, err := io.ReadAll(io.LimitReader(c.Body, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: body exceeds %d bytes", ErrBodyTooLarge, max)
	}
	return data, nil
}
