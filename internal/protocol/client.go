package protocol

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/durablestreams/watermill-durablestreams/retry"
)

// HeaderFunc adds headers to every request, for example a bearer token
// that rotates. It must be safe for concurrent use.
type HeaderFunc func(ctx context.Context, h http.Header) error

// Client is how every part of the library sends requests: one HTTP client,
// static and per-request headers, and a timeout per request.
type Client struct {
	HTTP           *http.Client
	Header         http.Header
	HeaderFunc     HeaderFunc
	RequestTimeout time.Duration
	// Retry bounds the retries of idempotent requests the client sends on
	// its own (stream creation). The zero value tries once.
	Retry retry.Policy
	// RefusedPoll, when not zero, caps the wait before a retry of a
	// request whose connection was refused, whatever the backoff has grown
	// to (see Retry): a server's port refuses while it restarts, and a
	// reader that must see the restarted stream before a writer fills it
	// polls that cheap failure often. It is the client's, not the
	// policy's: users set the policy, the library decides this. Every
	// Retry of a request this client sends is given it.
	RefusedPoll time.Duration
	// Reach, if set, hears of every request, to log a server that cannot
	// be reached and its return.
	Reach *Reach
	// NewHTTPError and NewStaleEpochError build the errors users get for
	// an answer with no meaning of its own and for a fenced producer (see
	// AnswerError, StaleEpochError). The root package sets them to the
	// constructors of its public types, which this package cannot import;
	// they take plain values so that those types are defined once, there.
	NewHTTPError       func(method, url string, status int, body string, retryAfter time.Duration) error
	NewStaleEpochError func(serverEpoch, epoch int64) error
}

// NewRequest builds a request bound to ctx with the configured headers.
// The caller owns the timeout (see WithTimeout).
func (c *Client) NewRequest(ctx context.Context, method, url string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, fmt.Errorf("build %s request for %s: %w", method, RedactURL(url), err)
	}
	for k, vs := range c.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	if c.HeaderFunc != nil {
		if err := c.HeaderFunc(ctx, req.Header); err != nil {
			return nil, fmt.Errorf("request headers: %w", err)
		}
	}
	return req, nil
}

// WithTimeout bounds one request.
func (c *Client) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.RequestTimeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.RequestTimeout)
}

// Do sends a request with the client's HTTP client; every request of the
// library goes through it, so Reach hears of each.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	c.Reach.observe(req, err)
	return resp, err
}

// Send is Do that also reports whether the request was written out in
// full (httptrace's WroteRequest without an error) before any error came:
// a request that was not cannot have been applied. Hooks of a ClientTrace
// already in req's context still run.
func (c *Client) Send(req *http.Request) (resp *http.Response, written bool, err error) {
	var wrote atomic.Bool
	ctx := httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				wrote.Store(true)
			}
		},
	})
	resp, err = c.Do(req.WithContext(ctx))
	return resp, wrote.Load(), err
}

// DrainClose reads what is left of a body (bounded) so the connection can
// be reused, then closes it.
func DrainClose(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, 64<<10)
	_ = body.Close()
}

// StreamOptions configure a stream at creation.
type StreamOptions struct {
	ContentType string
	// TTL makes the stream expire this long after its last write.
	TTL time.Duration
	// ExpiresAt makes the stream expire at a fixed time.
	ExpiresAt time.Time
}

// CreateStream creates the stream, or confirms it exists with the same
// configuration (PUT is idempotent, so network errors, 429 and 5xx are
// retried under c.Retry). A stream that exists with another content type
// is ErrContentTypeMismatch, naming both types; one that exists closed is
// ErrStreamClosed. An answer no Durable Streams endpoint gives is
// ErrNotStreamEndpoint (see createAnswer).
func (c *Client) CreateStream(ctx context.Context, url string, opts StreamOptions) error {
	_, err := c.createOrFind(ctx, url, opts)
	return err
}

// createOrFind is CreateStream that also tells whether this call created
// the stream (201) rather than found it (200).
func (c *Client) createOrFind(ctx context.Context, url string, opts StreamOptions) (created bool, err error) {
	err = c.retry(ctx, func() Try {
		var t Try
		created, t = c.createStream(ctx, url, opts)
		return t
	})
	return created, err
}

// EnsureStream is CreateStream for a caller that uses an existing stream
// as it is: one with the same content type but another TTL, expiry or
// closed state is no error, and differs tells the caller to say so (a
// caller that wants a strict check treats differs as ErrStreamConflict).
// created tells that this call created the stream.
func (c *Client) EnsureStream(ctx context.Context, url string, opts StreamOptions) (created, differs bool, err error) {
	created, err = c.createOrFind(ctx, url, opts)
	if errors.Is(err, ErrStreamConflict) {
		return false, true, nil
	}
	return created, false, err
}

// Tail returns the stream's current tail offset (HEAD), and false with no
// error when the stream does not exist yet. Transient failures are
// retried under c.Retry.
func (c *Client) Tail(ctx context.Context, url string) (offset string, exists bool, err error) {
	err = c.retry(ctx, func() Try {
		h, t := c.head(ctx, url)
		if t.Err == nil {
			offset = h.Get(HeaderNextOffset)
		}
		return t
	})
	if errors.Is(err, ErrStreamNotFound) {
		return "", false, nil
	}
	if err == nil && offset == "" {
		err = fmt.Errorf("head stream %s: no %s in the answer", RedactURL(url), HeaderNextOffset)
	}
	return offset, err == nil, err
}

// retry runs an idempotent request under c.Retry (see RetryIdempotent).
// Creating or asking about a stream writes no message, so its failures
// never read as ErrOutcomeUnknown to a Publish waiting on it.
func (c *Client) retry(ctx context.Context, try func() Try) error {
	return RetryIdempotent(ctx, c.Retry, c.RefusedPoll, try)
}

func (c *Client) createStream(ctx context.Context, url string, opts StreamOptions) (created bool, t Try) {
	if !opts.ExpiresAt.IsZero() && !opts.ExpiresAt.After(time.Now()) {
		// The stream's whole life is over before it starts: a server
		// refuses it (the reference server with a 500, which a retry
		// would repeat until the policy ran out).
		return false, Try{Err: fmt.Errorf("%w: %s cannot be created: its expiry %s has passed", ErrStreamGone, RedactURL(url), opts.ExpiresAt.UTC().Format(time.RFC3339))}
	}
	ctx, cancel := c.WithTimeout(ctx)
	defer cancel()
	req, err := c.NewRequest(ctx, http.MethodPut, url, nil)
	if err != nil {
		return false, Try{Err: err}
	}
	req.Header.Set("Content-Type", opts.ContentType)
	if opts.TTL > 0 {
		req.Header.Set(HeaderTTL, strconv.FormatInt(int64(opts.TTL/time.Second), 10))
	}
	if !opts.ExpiresAt.IsZero() {
		req.Header.Set(HeaderExpiresAt, opts.ExpiresAt.UTC().Format(time.RFC3339))
	}
	resp, written, err := c.Send(req)
	if err != nil {
		return false, TransportTry(fmt.Errorf("create stream %s: %w", RedactURL(url), err), written)
	}
	defer DrainClose(resp.Body)
	switch createAnswer(resp.StatusCode, resp.Header) {
	case createOK:
		return resp.StatusCode == http.StatusCreated, Try{}
	case createNoEndpoint:
		return false, Try{Err: fmt.Errorf("%w: PUT %s answered %d %s%s", ErrNotStreamEndpoint, RedactURL(url),
			resp.StatusCode, http.StatusText(resp.StatusCode), noOffset(resp.StatusCode, resp.Header))}
	case createConflict:
		h, t := c.head(ctx, url)
		if t.Err == nil {
			existing := strings.TrimSpace(h.Get("Content-Type"))
			if !SameContentType(existing, opts.ContentType) {
				return false, Try{Err: fmt.Errorf("%w: %s exists as %q, configured %q", ErrContentTypeMismatch, RedactURL(url), existing, opts.ContentType)}
			}
			if strings.EqualFold(h.Get(HeaderClosed), "true") {
				return false, Try{Err: fmt.Errorf("%w: %s", ErrStreamClosed, RedactURL(url))}
			}
		}
		return false, Try{Err: fmt.Errorf("%w: %s (TTL, expiry or closed state differ)", ErrStreamConflict, RedactURL(url))}
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return false, c.StatusTry(http.MethodPut, RedactURL(url), resp.StatusCode, ErrorBody(body),
		RetryAfter(resp.Header, time.Minute))
}

// What an answer to a create (PUT) means.
type createMeaning int

const (
	// createOther: an error answer the status says all about (400, 429,
	// 5xx...): AnswerError's.
	createOther createMeaning = iota
	// createOK: created (201) or found with the same configuration (200).
	createOK
	// createConflict: the stream exists with another configuration (409).
	createConflict
	// createNoEndpoint: no Durable Streams endpoint answers so: a 404 or
	// 405 to a PUT that forks nothing (PROTOCOL.md §5.1 gives 404 only for
	// a fork's missing source), or a success without the Stream-Next-Offset
	// §5.1 requires (a web server or a proxy's default route answering 200
	// to anything).
	createNoEndpoint
)

// createAnswer is the table of answers to a create, PROTOCOL.md §5.1.
func createAnswer(status int, h http.Header) createMeaning {
	switch status {
	case http.StatusOK, http.StatusCreated, http.StatusNoContent:
		if h.Get(HeaderNextOffset) == "" {
			return createNoEndpoint
		}
		return createOK
	case http.StatusConflict:
		return createConflict
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return createNoEndpoint
	}
	return createOther
}

// noOffset explains a success that is no Durable Streams answer.
func noOffset(status int, h http.Header) string {
	if status < 300 && h.Get(HeaderNextOffset) == "" {
		return " without " + HeaderNextOffset
	}
	return ""
}

// ContentType returns the content type of an existing stream (HEAD).
func (c *Client) ContentType(ctx context.Context, url string) (string, error) {
	h, t := c.head(ctx, url)
	if t.Err != nil {
		return "", t.Err
	}
	return strings.TrimSpace(h.Get("Content-Type")), nil
}

// head makes one HEAD request. A HEAD changes nothing, so no try of it is
// ever "may have been written".
func (c *Client) head(ctx context.Context, url string) (http.Header, Try) {
	ctx, cancel := c.WithTimeout(ctx)
	defer cancel()
	req, err := c.NewRequest(ctx, http.MethodHead, url, nil)
	if err != nil {
		return nil, Try{Err: err}
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, TransportTry(fmt.Errorf("head stream %s: %w", RedactURL(url), err), false)
	}
	DrainClose(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t := c.StatusTry(http.MethodHead, RedactURL(url), resp.StatusCode, "",
			RetryAfter(resp.Header, time.Minute))
		t.MayBeWritten = false
		return nil, t
	}
	if resp.Header.Get(HeaderNextOffset) == "" {
		// §5.5: a stream's HEAD carries its tail; a web server's does not.
		return nil, Try{Err: fmt.Errorf("%w: HEAD %s answered 200 without %s", ErrNotStreamEndpoint, RedactURL(url), HeaderNextOffset)}
	}
	return resp.Header, Try{}
}
