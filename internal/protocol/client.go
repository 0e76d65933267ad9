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
	Retry RetryPolicy
	// Reach, if set, hears of every request, to log a server that cannot
	// be reached and its return.
	Reach *Reach
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
// ErrStreamClosed.
func (c *Client) CreateStream(ctx context.Context, url string, opts StreamOptions) error {
	return c.retry(ctx, func() Try { return c.createStream(ctx, url, opts) })
}

// EnsureStream is CreateStream for a caller that uses an existing stream
// as it is: one with the same content type but another TTL, expiry or
// closed state is no error, and differs tells the caller to say so (a
// caller that wants a strict check treats differs as ErrStreamConflict).
func (c *Client) EnsureStream(ctx context.Context, url string, opts StreamOptions) (differs bool, err error) {
	err = c.CreateStream(ctx, url, opts)
	if errors.Is(err, ErrStreamConflict) {
		return true, nil
	}
	return false, err
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
	return RetryIdempotent(ctx, c.Retry, try)
}

func (c *Client) createStream(ctx context.Context, url string, opts StreamOptions) Try {
	if !opts.ExpiresAt.IsZero() && !opts.ExpiresAt.After(time.Now()) {
		// The stream's whole life is over before it starts: a server
		// refuses it (the reference server with a 500, which a retry
		// would repeat until the policy ran out).
		return Try{Err: fmt.Errorf("%w: %s cannot be created: its expiry %s has passed", ErrStreamGone, RedactURL(url), opts.ExpiresAt.UTC().Format(time.RFC3339))}
	}
	ctx, cancel := c.WithTimeout(ctx)
	defer cancel()
	req, err := c.NewRequest(ctx, http.MethodPut, url, nil)
	if err != nil {
		return Try{Err: err}
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
		return TransportTry(fmt.Errorf("create stream %s: %w", RedactURL(url), err), written)
	}
	defer DrainClose(resp.Body)
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusNoContent:
		return Try{}
	case http.StatusConflict:
		h, t := c.head(ctx, url)
		if t.Err == nil {
			existing := strings.TrimSpace(h.Get("Content-Type"))
			if !SameContentType(existing, opts.ContentType) {
				return Try{Err: fmt.Errorf("%w: %s exists as %q, configured %q", ErrContentTypeMismatch, RedactURL(url), existing, opts.ContentType)}
			}
			if strings.EqualFold(h.Get(HeaderClosed), "true") {
				return Try{Err: fmt.Errorf("%w: %s", ErrStreamClosed, RedactURL(url))}
			}
		}
		return Try{Err: fmt.Errorf("%w: %s (TTL, expiry or closed state differ)", ErrStreamConflict, RedactURL(url))}
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return StatusTry(&HTTPError{
		Method: http.MethodPut, URL: RedactURL(url), StatusCode: resp.StatusCode, Body: ErrorBody(body),
		RetryAfter: RetryAfter(resp.Header, time.Minute),
	})
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
		t := StatusTry(&HTTPError{
			Method: http.MethodHead, URL: RedactURL(url), StatusCode: resp.StatusCode,
			RetryAfter: RetryAfter(resp.Header, time.Minute),
		})
		t.MayBeWritten = false
		return nil, t
	}
	return resp.Header, Try{}
}
