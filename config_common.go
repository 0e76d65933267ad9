package durablestreams

import (
	"net/http"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// Checks and plumbing that the Publisher, Subscriber and offset store
// configs share.

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

// checkRetryPolicy rejects a policy with negative fields.
func checkRetryPolicy(p RetryPolicy) error {
	if p.MaxAttempts < 0 {
		return invalidConfig("RetryPolicy.MaxAttempts is negative")
	}
	return checkDurations(
		namedDuration{"RetryPolicy.InitialBackoff", p.InitialBackoff},
		namedDuration{"RetryPolicy.MaxBackoff", p.MaxBackoff},
		namedDuration{"RetryPolicy.MaxElapsed", p.MaxElapsed},
	)
}

// clientOptions are the HTTP settings every config has.
type clientOptions struct {
	httpClient     *http.Client
	header         http.Header
	headerFunc     HeaderFunc
	requestTimeout time.Duration
	retry          RetryPolicy
	// noCompression: reads on our own client ask for no gzip, which the
	// reference server would otherwise do on its only thread.
	noCompression bool
}

// newClient builds the protocol client; ours reports whether the HTTP
// client was created here (and so is ours to close).
func newClient(o clientOptions) (client *protocol.Client, ours bool) {
	hc := o.httpClient
	if hc == nil {
		hc = protocol.NewHTTPClient(64)
		if t, ok := hc.Transport.(*http.Transport); ok && o.noCompression {
			t.DisableCompression = true
		}
	}
	return &protocol.Client{
		HTTP:           hc,
		Header:         o.header,
		HeaderFunc:     o.headerFunc,
		RequestTimeout: o.requestTimeout,
		Retry:          o.retry,
	}, o.httpClient == nil
}
