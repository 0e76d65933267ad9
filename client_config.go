package durablestreams

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/durablestreams/watermill-durablestreams/internal/defaults"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// ClientConfig holds the HTTP settings that PublisherConfig,
// SubscriberConfig and StreamOffsetStoreConfig share; each embeds it. The
// zero value is a working default.
type ClientConfig struct {
	// HTTPClient sends every request; set it for TLS (a custom CA, mTLS),
	// proxies or tracing. Default: a client tuned for many requests to one
	// host, closed (its idle connections dropped) with the component that
	// made it.
	HTTPClient *http.Client
	// Header is sent with every request, for example a static
	// Authorization header. Header values are never logged.
	Header http.Header
	// HeaderFunc adds headers to every request, for example a bearer token
	// that rotates.
	HeaderFunc HeaderFunc
	// RequestTimeout bounds each HTTP request (a long-poll read has its own
	// bound, SubscriberConfig.LiveTimeout). Default: 30s.
	RequestTimeout time.Duration
	// RetryPolicy bounds retries of network errors, timeouts, 429 and 5xx.
	// The zero value means DefaultRetryPolicy(): a request fails with
	// ErrServerUnreachable after 10s without reaching the server, and
	// after 2 minutes of other failures.
	RetryPolicy RetryPolicy
}

// HeaderFunc adds headers to a request, for example a bearer token that
// rotates. It is called once per request and must be safe for concurrent
// use. An error fails the request without sending it, and it is not
// retried. Header values are never logged.
type HeaderFunc func(ctx context.Context, h http.Header) error

// RetryPolicy bounds how a failed request is tried again. Only failures
// that cannot have changed anything, or whose repeat the server recognises
// (every append carries idempotent producer headers), are retried: network
// errors, timeouts, 429 (honouring Retry-After) and 5xx.
type RetryPolicy struct {
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
	// ErrServerUnreachable, so that a Publish against a server that is
	// not there returns within seconds. Raise it (or set it to zero, which
	// leaves only MaxElapsed) to ride out longer outages. Zero means no
	// limit other than MaxElapsed and MaxAttempts.
	MaxUnreachable time.Duration
}

// DefaultRetryPolicy rides through a server restart or a short outage:
// backoff from 50ms to 5s, for at most 2 minutes per request, of which at
// most 10s without reaching the server.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		InitialBackoff: 50 * time.Millisecond, MaxBackoff: 5 * time.Second, MaxElapsed: 2 * time.Minute,
		MaxUnreachable: protocol.DefaultMaxUnreachable,
	}
}

func (c *ClientConfig) setDefaults() {
	if c.RequestTimeout == 0 {
		c.RequestTimeout = defaults.RequestTimeout
	}
	if c.RetryPolicy == (RetryPolicy{}) {
		c.RetryPolicy = DefaultRetryPolicy()
	}
}

func (c ClientConfig) validate() error {
	p := c.RetryPolicy
	if p.MaxAttempts < 0 {
		return invalidConfig("RetryPolicy.MaxAttempts is negative (%d)", p.MaxAttempts)
	}
	if p.MaxBackoff > 0 && p.InitialBackoff > p.MaxBackoff {
		return invalidConfig("RetryPolicy.InitialBackoff (%s) exceeds RetryPolicy.MaxBackoff (%s)", p.InitialBackoff, p.MaxBackoff)
	}
	return checkDurations(
		namedDuration{"RequestTimeout", c.RequestTimeout},
		namedDuration{"RetryPolicy.InitialBackoff", p.InitialBackoff},
		namedDuration{"RetryPolicy.MaxBackoff", p.MaxBackoff},
		namedDuration{"RetryPolicy.MaxElapsed", p.MaxElapsed},
		namedDuration{"RetryPolicy.MaxUnreachable", p.MaxUnreachable},
	)
}

// newClient is the one place that builds the HTTP plumbing: it returns the
// protocol client and whether the HTTP client was made here (and so is ours
// to close). compressedReads false makes our own client ask for no gzip,
// which the reference server would otherwise do on its only thread. The
// client logs to logger (nil: nowhere) when the server cannot be reached
// and when it answers again.
func (c ClientConfig) newClient(compressedReads bool, logger watermill.LoggerAdapter) (client *protocol.Client, ours bool) {
	hc := c.HTTPClient
	if hc == nil {
		hc = protocol.NewHTTPClient(64)
		if t, ok := hc.Transport.(*http.Transport); ok && !compressedReads {
			t.DisableCompression = true
		}
	}
	p := c.RetryPolicy
	return &protocol.Client{
		HTTP:           hc,
		Header:         c.Header,
		HeaderFunc:     protocol.HeaderFunc(c.HeaderFunc),
		RequestTimeout: c.RequestTimeout,
		// The one copy of the public policy's fields, made here once: the
		// internal packages cannot import this one, an alias of their type
		// would hide the fields from go doc, and an interface they could
		// take it by would add exported methods to RetryPolicy.
		Retry: protocol.RetryPolicy{
			MaxAttempts: p.MaxAttempts, InitialBackoff: p.InitialBackoff, MaxBackoff: p.MaxBackoff,
			MaxElapsed: p.MaxElapsed, MaxUnreachable: p.MaxUnreachable,
		},
		Reach: &protocol.Reach{Logger: logger},
		// The errors users get are this package's types, defined only
		// here; the internal packages build them with these.
		NewHTTPError:       newHTTPError,
		NewStaleEpochError: newStaleEpochError,
	}, c.HTTPClient == nil
}

// ErrInvalidConfig is wrapped by every configuration error; the message
// names the field as it is written in Go.
var ErrInvalidConfig = protocol.ErrInvalidConfig

func invalidConfig(format string, args ...any) error {
	return fmt.Errorf("durablestreams: %w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

type namedDuration struct {
	name string
	d    time.Duration
}

// checkDurations rejects negative durations, naming the field.
func checkDurations(durations ...namedDuration) error {
	for _, d := range durations {
		if d.d < 0 {
			return invalidConfig("%s is negative (%s)", d.name, d.d)
		}
	}
	return nil
}
