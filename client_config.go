package durablestreams

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/durablestreams/watermill-durablestreams/internal/defaults"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/retry"
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
	// The zero value means retry.DefaultPolicy(): a request fails with
	// ErrServerUnreachable after 10s without reaching the server, and
	// after 2 minutes of other failures.
	RetryPolicy retry.Policy
}

// HeaderFunc adds headers to a request, for example a bearer token that
// rotates. It is called once per request and must be safe for concurrent
// use. An error fails the request without sending it, and it is not
// retried. Header values are never logged.
type HeaderFunc func(ctx context.Context, h http.Header) error

func (c *ClientConfig) setDefaults() {
	if c.RequestTimeout == 0 {
		c.RequestTimeout = defaults.RequestTimeout
	}
	if c.RetryPolicy == (retry.Policy{}) {
		c.RetryPolicy = retry.DefaultPolicy()
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
	return &protocol.Client{
		HTTP:           hc,
		Header:         c.Header,
		HeaderFunc:     protocol.HeaderFunc(c.HeaderFunc),
		RequestTimeout: c.RequestTimeout,
		Retry:          c.RetryPolicy,
		Reach:          &protocol.Reach{Logger: logger},
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

// nilReference returns what kind of nil v holds when it is a nil pointer
// (or other nil reference: map, slice, func, chan) in a non-nil
// interface, whose methods would panic; else "". It uses reflect: for
// configs only, never per message.
func nilReference(v any) string {
	r := reflect.ValueOf(v)
	switch r.Kind() {
	case reflect.Pointer, reflect.UnsafePointer:
		if r.IsNil() {
			return "pointer"
		}
	case reflect.Map, reflect.Slice, reflect.Func, reflect.Chan:
		if r.IsNil() {
			return r.Kind().String()
		}
	}
	return ""
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
