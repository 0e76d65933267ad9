package protocol

import (
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/durablestreams/watermill-durablestreams/retry"
)

// Reach tells the log when a server cannot be reached and when it answers
// again. Every request of one component (a Publisher, a Subscriber, an
// offset store) goes through its Client, which reports here: the first
// request that cannot reach a server (see Unreachable) is logged at Error
// with its URL and cause, then one Error line at most every Interval
// while the server stays so, and the first answer after that at Info.
// State is per server (scheme and host), so a TopicURL layout over two
// servers logs each on its own.
//
// The zero value logs nothing; it still counts outages.
type Reach struct {
	Logger watermill.LoggerAdapter
	// Interval between repeated Error lines; zero means the default
	// MaxUnreachable (see interval).
	Interval time.Duration

	// downs counts servers now unreachable: an answer while it is zero
	// (the usual case) costs one atomic load.
	downs   atomic.Int32
	outages atomic.Uint64

	mu      sync.Mutex
	servers map[string]*outage
}

// outage is one server's time of being unreachable.
type outage struct {
	since    time.Time // the first failed request
	logged   time.Time // the last Error line
	failures int       // failed requests in all
	unlogged int       // failed requests since the last Error line
	last     error
}

// Outages counts the times a server became unreachable: a caller that
// compares it before and after some requests learns whether a server
// went away in between (a restart may have lost its streams).
func (r *Reach) Outages() uint64 {
	if r == nil {
		return 0
	}
	return r.outages.Load()
}

// Down reports whether some server of this component is unreachable now.
func (r *Reach) Down() bool { return r != nil && r.downs.Load() > 0 }

// LastFailure is the error of the last request that could not reach the
// server of rawURL while it is unreachable, nil when it is not.
func (r *Reach) LastFailure(rawURL string) error {
	if !r.Down() {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if o := r.servers[serverOf(rawURL)]; o != nil {
		return o.last
	}
	return nil
}

// observe is Client.Do's report of one request.
func (r *Reach) observe(req *http.Request, err error) {
	if r == nil {
		return
	}
	switch {
	case err == nil:
		if r.downs.Load() > 0 {
			r.answered(req.URL)
		}
	case req.Context().Err() != nil:
		// Our own timeout or cancellation, not the server's absence.
	case Unreachable(err):
		r.failed(req.URL, err)
	}
}

func (r *Reach) failed(u *url.URL, err error) {
	now := time.Now()
	redacted := RedactURL(u.String())
	r.mu.Lock()
	if r.servers == nil {
		r.servers = make(map[string]*outage)
	}
	key := u.Scheme + "://" + u.Host
	o := r.servers[key]
	first := o == nil
	if first {
		o = &outage{since: now, logged: now}
		r.servers[key] = o
		r.downs.Add(1)
		r.outages.Add(1)
	}
	o.failures++
	if !first {
		o.unlogged++ // the first is the line logged below
	}
	o.last = err
	repeat := !first && now.Sub(o.logged) >= r.interval()
	var fields watermill.LogFields
	if repeat {
		fields = watermill.LogFields{
			"stream_url":      redacted,
			"unreachable_for": now.Sub(o.since).Round(time.Millisecond).String(),
			"failed_requests": o.unlogged,
		}
		o.logged, o.unlogged = now, 0
	}
	r.mu.Unlock()
	switch {
	case r.Logger == nil:
	case first:
		r.Logger.Error("Durable Streams server unreachable; retrying", err, watermill.LogFields{"stream_url": redacted})
	case repeat:
		r.Logger.Error("Durable Streams server still unreachable; retrying", err, fields)
	}
}

func (r *Reach) answered(u *url.URL) {
	now := time.Now()
	r.mu.Lock()
	key := u.Scheme + "://" + u.Host
	o := r.servers[key]
	if o == nil {
		r.mu.Unlock()
		return
	}
	delete(r.servers, key)
	r.downs.Add(-1)
	r.mu.Unlock()
	if r.Logger != nil {
		r.Logger.Info("Durable Streams server answers again", watermill.LogFields{
			"stream_url":      RedactURL(u.String()),
			"unreachable_for": now.Sub(o.since).Round(time.Millisecond).String(),
			"failed_requests": o.failures,
		})
	}
}

// interval spaces the Error lines repeated while a server stays
// unreachable: one a retry would flood the log (a retry every 250 ms to
// 5 s per request in flight), none after the first would leave an
// operator unsure whether the library still tries. By default it is the
// default MaxUnreachable, so a line comes about when a waiting call gives
// up.
func (r *Reach) interval() time.Duration {
	if r.Interval > 0 {
		return r.Interval
	}
	return retry.DefaultPolicy().MaxUnreachable
}

// serverOf is the key of rawURL's server: scheme and host.
func serverOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
