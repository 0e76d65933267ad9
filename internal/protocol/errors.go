package protocol

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// Sentinels shared by the producer, publisher and subscriber; the root
// package re-exports them.
var (
	// ErrStreamClosed: the stream was closed (EOF); no more appends.
	ErrStreamClosed = errors.New("stream is closed")
	// ErrStreamNotFound: the stream does not exist (404).
	ErrStreamNotFound = errors.New("stream not found")
	// ErrStreamGone: the stream or the requested offset is no longer kept (410).
	ErrStreamGone = errors.New("stream or offset gone")
	// ErrStaleEpoch: another producer with the same id claimed a newer epoch.
	ErrStaleEpoch = errors.New("producer epoch is stale (fenced)")
	// ErrContentTypeMismatch: the stream exists with another content type.
	ErrContentTypeMismatch = errors.New("stream content type mismatch")
	// ErrStreamConflict: the stream exists with another configuration.
	ErrStreamConflict = errors.New("stream exists with another configuration")
	// ErrInvalidConfig is wrapped by every configuration error.
	ErrInvalidConfig = errors.New("invalid config")
	// ErrRetriesExhausted: a retryable failure outlasted the retry policy.
	ErrRetriesExhausted = errors.New("retries exhausted")
	// ErrServerUnreachable: no try of a request reached the server (see
	// Unreachable) for as long as the retry policy allows.
	ErrServerUnreachable = errors.New("server unreachable")
	// ErrNotStreamEndpoint: the server answered, but not as a Durable
	// Streams endpoint does (a 404 to a create, a success without
	// Stream-Next-Offset): the URL is no stream root.
	ErrNotStreamEndpoint = errors.New("not a Durable Streams endpoint")
	// ErrNotPublished: a message was not appended because an earlier one
	// failed, or its answer meant nothing was appended. Both the Publisher
	// and the exactly-once writer return it; its text keeps the root
	// package's prefix it was born with.
	ErrNotPublished = errors.New("durablestreams: message not published")
)

// AnswerError is the error of an answer the protocol gives no meaning of
// its own; url is already redacted. It is the error users get, which the
// Client's NewHTTPError builds (the root package's *HTTPError, the one
// definition of that error, its text and its errors.Is matches). A nil
// Client, or one without NewHTTPError (internal tests), gives a plain
// error that matches ErrStreamNotFound for a 404 and ErrStreamGone for a
// 410, as the root's *HTTPError does. A caller that decides on the status
// keeps it as a value (see StatusTry): it is not read back out of the
// error.
func (c *Client) AnswerError(method, url string, status int, body string, retryAfter time.Duration) error {
	if c != nil && c.NewHTTPError != nil {
		return c.NewHTTPError(method, url, status, body, retryAfter)
	}
	return plainAnswerError(method, url, status, body)
}

func plainAnswerError(method, url string, status int, body string) error {
	msg := fmt.Sprintf("%s %s: %d", method, url, status)
	if body != "" {
		msg += ": " + body
	}
	switch status {
	case http.StatusNotFound:
		return fmt.Errorf("%s: %w", msg, ErrStreamNotFound)
	case http.StatusGone:
		return fmt.Errorf("%s: %w", msg, ErrStreamGone)
	}
	return errors.New(msg)
}

// StaleEpochError is the error of the 403 a fenced producer gets: the
// server knows serverEpoch for its id, it sent epoch. A nil Client, or one
// without NewStaleEpochError, gives a plain error matching ErrStaleEpoch.
func (c *Client) StaleEpochError(serverEpoch, epoch int64) error {
	if c != nil && c.NewStaleEpochError != nil {
		return c.NewStaleEpochError(serverEpoch, epoch)
	}
	return fmt.Errorf("%w: producer epoch %d, server has epoch %d", ErrStaleEpoch, epoch, serverEpoch)
}

// Retryable reports whether a request that failed with err, without an
// answer, may be sent again as it is: network errors and timeouts. A
// cancelled caller context is not retryable; the caller checks its own
// context. An error answer is classified by its status where it is read
// (StatusTry, RetryableStatus), not from its error.
func Retryable(err error) bool {
	var certErr *tls.CertificateVerificationError
	if errors.Is(err, context.Canceled) || errors.As(err, &certErr) {
		return false
	}
	// *url.Error implements net.Error itself, so look for the network
	// failure beneath it rather than for the interface.
	var opErr *net.OpError
	var timeout interface{ Timeout() bool }
	return errors.As(err, &opErr) ||
		// net/http's errServerClosedIdle (unexported): a reused keep-alive
		// connection that the server had closed. The transport retries it
		// for idempotent requests only, and a POST is not one to it; ours
		// are (producer headers), so we retry it. Seen after a server
		// restart under load, where it failed every Publish for minutes.
		strings.Contains(err.Error(), "http: server closed idle connection") ||
		(errors.As(err, &timeout) && timeout.Timeout()) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED)
}

// Unreachable reports whether a request failed because the server could
// not be reached at all: its name did not resolve, the connection was
// refused, the network or host is unreachable, or the dial timed out. Such
// a try never reached the server, so it changed nothing.
func Unreachable(err error) bool {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	return errors.As(err, &dnsErr) ||
		(errors.As(err, &opErr) && opErr.Op == "dial") ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH)
}

// RetryableStatus reports whether a status is worth retrying: 429 and
// 5xx, except 501 Not Implemented and 505, which say the server will never
// do it (PROTOCOL.md §5.2: a stream that takes no appends); everything
// else is final.
func RetryableStatus(code int) bool {
	if code == http.StatusNotImplemented || code == http.StatusHTTPVersionNotSupported {
		return false
	}
	return code == http.StatusTooManyRequests || code >= 500
}

// maxErrorBody bounds how much of an error body is kept.
const maxErrorBody = 512

// ErrorBody trims an error body for AnswerError: bounded, one line.
func ErrorBody(b []byte) string {
	if len(b) > maxErrorBody {
		b = b[:maxErrorBody]
	}
	return strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "?")), " ")
}

// RedactURL drops user info and the query (which may carry tokens) from a
// URL for error messages and logs.
func RedactURL(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	if scheme, rest, ok := strings.Cut(raw, "://"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 && at < strings.IndexByte(rest+"/", '/') {
			rest = rest[at+1:]
		}
		return scheme + "://" + rest
	}
	return raw
}
