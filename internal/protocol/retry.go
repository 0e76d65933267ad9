package protocol

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// RetryPolicy bounds how a failed request is tried again. Only failures
// that cannot have changed anything, or whose repeat the server recognises
// (idempotent producer headers), are retried: network errors, timeouts,
// 429 and 5xx.
type RetryPolicy struct {
	// MaxAttempts is the most tries of one request, the first included.
	// Zero means no limit other than MaxElapsed.
	MaxAttempts int
	// InitialBackoff is the wait before the first retry.
	InitialBackoff time.Duration
	// MaxBackoff caps the wait between retries.
	MaxBackoff time.Duration
	// MaxElapsed is the longest a request is retried, from its first try.
	// Zero means no limit other than MaxAttempts and the caller's context.
	MaxElapsed time.Duration
}

// DefaultRetryPolicy rides through a server restart or a short outage.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		MaxAttempts:    0,
		InitialBackoff: 50 * time.Millisecond,
		MaxBackoff:     5 * time.Second,
		MaxElapsed:     2 * time.Minute,
	}
}

// Backoff returns the wait before retry number attempt (1 = first retry):
// exponential with full jitter in [d/2, d], so that many clients that
// failed together do not come back together.
func (p RetryPolicy) Backoff(attempt int) time.Duration {
	d := p.InitialBackoff
	if d <= 0 {
		d = 50 * time.Millisecond
	}
	for i := 1; i < attempt && d < p.MaxBackoff; i++ {
		d *= 2
	}
	if p.MaxBackoff > 0 && d > p.MaxBackoff {
		d = p.MaxBackoff
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// Allows reports whether another try may start after attempt tries that
// began at start, given the wait it would need first.
func (p RetryPolicy) Allows(attempt int, start time.Time, wait time.Duration) bool {
	if p.MaxAttempts > 0 && attempt >= p.MaxAttempts {
		return false
	}
	if p.MaxElapsed > 0 && time.Since(start)+wait > p.MaxElapsed {
		return false
	}
	return true
}

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
