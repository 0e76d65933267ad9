// Package retry defines how the durablestreams library tries a failed
// request again. A Policy bounds the tries of one request and the waits
// between them; the RetryPolicy field of durablestreams.ClientConfig holds
// the one a Publisher, Subscriber or StreamOffsetStore uses, and its zero
// value there means DefaultPolicy().
//
// The policy has a package of its own so that the library's internal
// packages and its users share one definition of it: this package imports
// nothing of the library.
package retry

import (
	"math/rand/v2"
	"time"
)

// Policy bounds how a failed request is tried again. Only failures
// that cannot have changed anything, or whose repeat the server recognises
// (every append carries idempotent producer headers), are retried: network
// errors, timeouts, 429 (honouring Retry-After) and 5xx.
type Policy struct {
	// MaxAttempts is the most tries of one request, the first included.
	// Zero means no limit other than MaxElapsed.
	MaxAttempts int
	// InitialBackoff is the wait before the first retry; each later wait
	// doubles, up to MaxBackoff, each drawn at random from its upper half.
	InitialBackoff time.Duration
	// MaxBackoff caps the wait between retries.
	MaxBackoff time.Duration
	// MaxElapsed is the longest a request is retried, from its first try.
	// Zero means no limit other than MaxAttempts and the caller's context.
	MaxElapsed time.Duration
	// MaxUnreachable is the longest a request is retried while no try
	// reaches the server (connection refused, unknown host, unreachable
	// network, connect timeout), counted from its first try or from the
	// last try that reached the server; then it fails with
	// durablestreams.ErrServerUnreachable, so that a Publish against a
	// server that is not there returns within seconds. Raise it (or set
	// it to zero, which leaves only MaxElapsed) to ride out longer
	// outages. Zero means no limit other than MaxElapsed and MaxAttempts.
	MaxUnreachable time.Duration
}

// DefaultPolicy rides through a server restart or a short outage:
// backoff from 50ms to 5s, for at most 2 minutes per request, of which at
// most 10s without reaching the server (about what a caller of a
// synchronous call waits before it takes the silence for an outage).
func DefaultPolicy() Policy {
	return Policy{
		InitialBackoff: 50 * time.Millisecond,
		MaxBackoff:     5 * time.Second,
		MaxElapsed:     2 * time.Minute,
		MaxUnreachable: 10 * time.Second,
	}
}

// Backoff returns the wait before retry number attempt (1 = the first
// retry): d = InitialBackoff (50ms when not set) doubled per retry up to
// MaxBackoff, then drawn at random from [d/2, d] ("equal jitter"). The
// random part keeps clients that failed together from coming back
// together; the floor of d/2 keeps a retry from following its failure at
// once. The wait is never zero: a d of 1ns is waited whole. The library
// waits the server's Retry-After instead when it is longer.
func (p Policy) Backoff(attempt int) time.Duration {
	d := p.InitialBackoff
	if d <= 0 {
		d = 50 * time.Millisecond
	}
	for i := 1; i < attempt && d < p.MaxBackoff; i++ {
		if d > p.MaxBackoff/2 {
			// Doubling would pass the cap (or, near the largest
			// Duration, overflow): the cap it is.
			d = p.MaxBackoff
			break
		}
		d *= 2
	}
	if p.MaxBackoff > 0 && d > p.MaxBackoff {
		d = p.MaxBackoff
	}
	if d < 2 {
		return d // half of 1ns is 0: no wait at all
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// Allows reports whether another try may start after attempt tries, the
// first of which began at start, when it would first wait wait: not once
// MaxAttempts tries were made, nor when the wait would end more than
// MaxElapsed after start. MaxUnreachable is not its concern: it is
// counted from the last try that reached the server, which only the
// caller knows.
func (p Policy) Allows(attempt int, start time.Time, wait time.Duration) bool {
	if p.MaxAttempts > 0 && attempt >= p.MaxAttempts {
		return false
	}
	// Compared as wait > what is left, not elapsed+wait > MaxElapsed: the
	// sum of a huge wait would overflow and pass.
	if p.MaxElapsed > 0 && wait > p.MaxElapsed-time.Since(start) {
		return false
	}
	return true
}
