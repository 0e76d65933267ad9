package protocol

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
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
}

// NewRequest builds a request bound to ctx with the configured headers.
// The caller owns the timeout (see WithTimeout).
func (c *Client) NewRequest(ctx context.Context, method, url string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, fmt.Errorf("durablestreams: build %s request for %s: %w", method, RedactURL(url), err)
	}
	for k, vs := range c.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	if c.HeaderFunc != nil {
		if err := c.HeaderFunc(ctx, req.Header); err != nil {
			return nil, fmt.Errorf("durablestreams: request headers: %w", err)
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

// Do sends a request with the client's HTTP client.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	return hc.Do(req)
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
// is ErrContentTypeMismatch, naming both types.
func (c *Client) CreateStream(ctx context.Context, url string, opts StreamOptions) error {
	return c.retry(ctx, "create stream "+RedactURL(url), func() error { return c.createStream(ctx, url, opts) })
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
	err = c.retry(ctx, "head stream "+RedactURL(url), func() error {
		h, herr := c.head(ctx, url)
		if herr != nil {
			return herr
		}
		offset = h.Get(HeaderNextOffset)
		return nil
	})
	if errors.Is(err, ErrStreamNotFound) {
		return "", false, nil
	}
	if err == nil && offset == "" {
		err = fmt.Errorf("durablestreams: head stream %s: no %s in the answer", RedactURL(url), HeaderNextOffset)
	}
	return offset, err == nil, err
}

// retry runs an idempotent request until it succeeds, fails for good, or
// c.Retry runs out.
func (c *Client) retry(ctx context.Context, what string, try func() error) error {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := try()
		if err == nil || !Retryable(err) || ctx.Err() != nil {
			return err
		}
		wait := c.Retry.Backoff(attempt)
		var httpErr *HTTPError
		if errors.As(err, &httpErr) && httpErr.RetryAfter > wait {
			wait = httpErr.RetryAfter
		}
		if c.Retry == (RetryPolicy{}) || !c.Retry.Allows(attempt, start, wait) {
			return fmt.Errorf("%w: %w", ErrRetriesExhausted, err)
		}
		if serr := Sleep(ctx, wait); serr != nil {
			return fmt.Errorf("durablestreams: %s: %w (after: %v)", what, serr, err)
		}
	}
}

func (c *Client) createStream(ctx context.Context, url string, opts StreamOptions) error {
	ctx, cancel := c.WithTimeout(ctx)
	defer cancel()
	req, err := c.NewRequest(ctx, http.MethodPut, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", opts.ContentType)
	if opts.TTL > 0 {
		req.Header.Set(HeaderTTL, strconv.FormatInt(int64(opts.TTL/time.Second), 10))
	}
	if !opts.ExpiresAt.IsZero() {
		req.Header.Set(HeaderExpiresAt, opts.ExpiresAt.UTC().Format(time.RFC3339))
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("durablestreams: create stream %s: %w", RedactURL(url), err)
	}
	defer DrainClose(resp.Body)
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusNoContent:
		return nil
	case http.StatusConflict:
		existing, err := c.ContentType(ctx, url)
		if err == nil && !SameContentType(existing, opts.ContentType) {
			return fmt.Errorf("%w: %s exists as %q, configured %q", ErrContentTypeMismatch, RedactURL(url), existing, opts.ContentType)
		}
		return fmt.Errorf("%w: %s (TTL, expiry or closed state differ)", ErrStreamConflict, RedactURL(url))
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return &HTTPError{
		Method: http.MethodPut, URL: RedactURL(url), StatusCode: resp.StatusCode, Body: ErrorBody(body),
		RetryAfter: RetryAfter(resp.Header, time.Minute),
	}
}

// ContentType returns the content type of an existing stream (HEAD).
func (c *Client) ContentType(ctx context.Context, url string) (string, error) {
	h, err := c.head(ctx, url)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(h.Get("Content-Type")), nil
}

func (c *Client) head(ctx context.Context, url string) (http.Header, error) {
	ctx, cancel := c.WithTimeout(ctx)
	defer cancel()
	req, err := c.NewRequest(ctx, http.MethodHead, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("durablestreams: head stream %s: %w", RedactURL(url), err)
	}
	DrainClose(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, &HTTPError{
			Method: http.MethodHead, URL: RedactURL(url), StatusCode: resp.StatusCode,
			RetryAfter: RetryAfter(resp.Header, time.Minute),
		}
	}
	return resp.Header, nil
}
