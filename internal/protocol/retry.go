package protocol

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/durablestreams/watermill-durablestreams/retry"
)

// RetryAfter reads a Retry-After header in seconds or as an HTTP date; it
// returns zero when absent or unreadable. It is capped at max.
func RetryAfter(h http.Header, max time.Duration) time.Duration {
	v := h.Get(HeaderRetryAfter)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		d = time.Duration(secs * float64(time.Second))
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	}
	if d < 0 {
		return 0
	}
	if max > 0 && d > max {
		return max
	}
	return d
}

// Sleep waits for d or until ctx is done, whichever comes first.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ErrOutcomeUnknown means a request that changes the stream ended without an
// answer after it may have reached the server (a lost connection or a
// timeout after it was written, a 5xx), and retrying did not settle it. It
// may or may not have been applied. It is distinct from
// ErrRetriesExhausted, which means that no try was written.
var ErrOutcomeUnknown = errors.New("outcome unknown (the request may have been written)")

// Try is how one try of a request ended, as Retry needs to know it.
type Try struct {
	// Err is nil when the try got an answer the caller handles itself,
	// and otherwise why it failed.
	Err error
	// Retryable: the same request may be sent again as it is.
	Retryable bool
	// MayBeWritten: the request may have reached the server and been
	// applied (it was written before the connection failed or timed out,
	// or a 5xx came back). A try that failed before the request was
	// written, or drew a 429, was not applied.
	MayBeWritten bool
	// RetryAfter is the server's Retry-After, zero when it sent none.
	RetryAfter time.Duration
	// Status is the HTTP status of the error answer the try drew (see
	// StatusTry), for a caller that decides on it; zero when it drew
	// none.
	Status int
}

// TransportTry classifies an error of http.Client.Do for a request that
// was (written) or was not written out in full before it (see
// Client.Send). After the request was written, any error, a malformed
// answer included, may hide an applied request and is retried; before,
// only network failures and timeouts are retried (a refused certificate
// or a failing HeaderFunc would fail again).
func TransportTry(err error, written bool) Try {
	if written {
		return Try{Err: err, Retryable: true, MayBeWritten: true}
	}
	return Try{Err: err, Retryable: Retryable(err)}
}

// StatusTry is the Try of an error answer the protocol gives no meaning
// of its own: its Err is AnswerError's and its Status the answer's. 429 is
// retried and was not applied; a 5xx is retried and may have been applied
// (a proxy can answer 502 or 504 after the server wrote); anything else is
// final.
func (c *Client) StatusTry(method, url string, status int, body string, retryAfter time.Duration) Try {
	return Try{
		Err:          c.AnswerError(method, url, status, body, retryAfter),
		Status:       status,
		Retryable:    RetryableStatus(status),
		MayBeWritten: RetryableStatus(status) && status >= 500,
		RetryAfter:   retryAfter,
	}
}

// Retry runs try (n = 1 for the first try) until it returns a nil Err or
// a failure that is not Retryable, or until p or ctx ends the retries,
// waiting Backoff, or the server's Retry-After when longer, between tries.
// refusedPoll, when not zero, caps the wait after a try whose connection
// was refused (see Client.RefusedPoll); callers pass their Client's. The
// zero retry.Policy tries once.
//
// It returns nil, the error of a try that failed for good as it is (the
// caller knows what its earlier tries may have done), or, when the retries
// end:
//   - an error matching ErrOutcomeUnknown if any try may have been written
//     (when ctx ended, it names ctx's cause and the last error but wraps
//     neither);
//   - otherwise, when p ran out, one matching ErrRetriesExhausted, and when
//     ctx ended, one matching ctx's cause. Neither was applied.
//
// When the last try did not reach the server (see Unreachable), the error
// also matches ErrServerUnreachable (except with ErrOutcomeUnknown when
// ctx ended), and p.MaxUnreachable ends the retries too. Every other such
// error also wraps the last try's error.
func Retry(ctx context.Context, p retry.Policy, refusedPoll time.Duration, try func(n int) Try) error {
	start := time.Now()
	reached := start // the end of the last try that reached the server
	mayBeWritten := false
	for n := 1; ; n++ {
		t := try(n)
		if t.Err == nil {
			return nil
		}
		mayBeWritten = mayBeWritten || t.MayBeWritten
		unreachable := !t.MayBeWritten && Unreachable(t.Err)
		if !unreachable {
			reached = time.Now()
		}
		if ctx.Err() != nil {
			return ended(mayBeWritten, unreachable, n, start, context.Cause(ctx), t.Err)
		}
		if !t.Retryable {
			return t.Err
		}
		wait := max(p.Backoff(n), t.RetryAfter)
		if refusedPoll > 0 && unreachable && errors.Is(t.Err, syscall.ECONNREFUSED) {
			// Jittered as a first retry of refusedPoll would be, so that
			// readers refused together do not come back together.
			wait = min(wait, retry.Policy{InitialBackoff: refusedPoll, MaxBackoff: refusedPoll}.Backoff(1))
		}
		if p == (retry.Policy{}) || !p.Allows(n, start, wait) ||
			(unreachable && p.MaxUnreachable > 0 && time.Since(reached)+wait > p.MaxUnreachable) {
			return exhausted(mayBeWritten, unreachable, n, start, t.Err)
		}
		if err := Sleep(ctx, wait); err != nil {
			return ended(mayBeWritten, unreachable, n, start, context.Cause(ctx), t.Err)
		}
	}
}

// exhausted is Retry's error when the policy ends the retries.
func exhausted(mayBeWritten, unreachable bool, n int, start time.Time, last error) error {
	sentinel := ErrRetriesExhausted
	if mayBeWritten {
		sentinel = ErrOutcomeUnknown
	}
	elapsed := time.Since(start).Round(time.Millisecond)
	if unreachable {
		return fmt.Errorf("%w: %w after %d tries in %s: %w", ErrServerUnreachable, sentinel, n, elapsed, last)
	}
	return fmt.Errorf("%w after %d tries in %s: %w", sentinel, n, elapsed, last)
}

// RetryIdempotent is Retry for a request whose repeat cannot change more
// than its first success did (a PUT, a HEAD, a close, a record whose
// duplicate is harmless): no try counts as "may have been written", so
// when the retries end the error matches ErrRetriesExhausted or ctx's
// cause, never ErrOutcomeUnknown.
func RetryIdempotent(ctx context.Context, p retry.Policy, refusedPoll time.Duration, try func() Try) error {
	return Retry(ctx, p, refusedPoll, func(int) Try {
		t := try()
		t.MayBeWritten = false
		return t
	})
}

func ended(mayBeWritten, unreachable bool, n int, start time.Time, cause, last error) error {
	elapsed := time.Since(start).Round(time.Millisecond)
	if mayBeWritten {
		// The cause is named, not wrapped: an outcome-unknown error must not
		// match a sentinel that means "not written" (a producer's "closed").
		// The last try's error carries the context's cause too.
		return fmt.Errorf("%w: gave up after %d tries in %s: %v (last try: %v)", ErrOutcomeUnknown, n, elapsed, cause, last)
	}
	if unreachable {
		return fmt.Errorf("gave up after %d tries in %s: %w (last try: %w: %w)", n, elapsed, cause, ErrServerUnreachable, last)
	}
	return fmt.Errorf("gave up after %d tries in %s: %w (last try: %w)", n, elapsed, cause, last)
}
