package producer

import (
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

// Defaults for a zero Config.
const (
	DefaultLinger           = 5 * time.Millisecond
	DefaultMaxBatchBytes    = 1 << 20
	DefaultMaxBufferedBytes = 64 << 20
	DefaultRequestTimeout   = 30 * time.Second

	// DefaultMaxInFlight is chosen from BenchmarkMaxInFlight against the
	// reference server (100-byte JSON messages, 64 appending goroutines,
	// shared 2-core machine, -benchtime=300000x -count=3; msgs/s, median
	// and range of 3 runs — noisy, the node server is CPU-bound):
	//
	//	in flight 1:   50k (25k-99k)
	//	in flight 2:  187k (104k-214k)
	//	in flight 4:  151k (144k-201k)
	//	in flight 8:  105k (36k-389k)
	//
	// Two overlap one request's round trip with the next batch's; more buy
	// little, because the server answers a seq that overtook its
	// predecessor with 409 instead of queueing it, and each one is resent.
	// Confirmed through the Publisher with synchronous Publish from 64
	// goroutines (benchcmd row 2, -inflight 2 vs 4, alternated): 97k vs
	// 75-79k msgs/s, with 3% vs 11-13% of requests resent after a 409.
	DefaultMaxInFlight = 2
)

// Config configures a Producer for one stream.
type Config struct {
	// URL of the stream, which must already exist, or exist once Gate
	// says so.
	URL string
	// Gate, if not nil, holds every request back until it yields: nil
	// once the stream exists, or why it cannot (then every message
	// appended so far, and every later Append, fails with that error; none
	// was sent). Appends are buffered meanwhile, so that a caller who asked
	// only for buffering need not wait for the stream to be created.
	Gate <-chan error
	// ContentType is the stream's content type; the producer works in JSON
	// mode (one JSON value per message, batched as an array) iff it is
	// application/json, and in byte mode (payloads concatenated) otherwise.
	ContentType string
	// ProducerID names this producer on the server; with Epoch and the
	// sequence number it makes appends idempotent.
	ProducerID string
	// Epoch is the first epoch. A restarted producer should use a higher
	// one, or AutoClaim.
	Epoch int64
	// AutoClaim: when another producer with the same id fenced this one
	// (403), take the server's epoch + 1 and go on instead of failing.
	AutoClaim bool
	// Linger is how long a batch waits for more messages while other
	// requests are in flight. A message is sent at once when nothing is.
	Linger time.Duration
	// MaxBatchBytes caps the body of one request, array brackets and commas
	// included. A message that cannot fit alone is ErrMessageTooLarge.
	MaxBatchBytes int
	// MaxInFlight is how many append requests may be outstanding at once.
	MaxInFlight int
	// MaxBufferedBytes bounds the payload bytes accepted but not yet
	// acknowledged; Append waits beyond it.
	MaxBufferedBytes int
	// Retry bounds the retries of network errors, timeouts, 429 and 5xx.
	// The zero value means retry.DefaultPolicy().
	Retry retry.Policy
	// Client sends the requests. Nil means a client with a transport tuned
	// for the reference server and a 30 s request timeout.
	Client *protocol.Client
	// OnError receives the errors of messages appended without a DoneFunc.
	OnError func(err error)
	// Logger receives Debug (lifecycle) and Trace (per batch) entries.
	Logger watermill.LoggerAdapter
}

// setDefaults fills zero fields with defaults. A Client with no
// RequestTimeout is copied, not changed, to get the default timeout.
func (c *Config) setDefaults() {
	if c.Linger == 0 {
		c.Linger = DefaultLinger
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxBufferedBytes == 0 {
		c.MaxBufferedBytes = max(DefaultMaxBufferedBytes, c.MaxBatchBytes)
	}
	if c.Retry == (retry.Policy{}) {
		c.Retry = retry.DefaultPolicy()
	}
	if c.Client == nil {
		c.Client = &protocol.Client{HTTP: protocol.NewHTTPClient(max(8, 2*c.MaxInFlight))}
	}
	if c.Client.RequestTimeout == 0 {
		client := *c.Client
		client.RequestTimeout = DefaultRequestTimeout
		c.Client = &client
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
}

// Validate reports the first problem with the configuration, naming the
// field as it is written in Go (the publisher checks its own config, named
// as users write it, before it makes a producer).
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: producer: %s", protocol.ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.URL == "":
		return bad("URL is empty")
	case c.ContentType == "":
		return bad("ContentType is empty")
	case c.ProducerID == "":
		return bad("ProducerID (the Producer-Id header) is empty")
	case c.Epoch < 0 || c.Epoch > protocol.MaxInteger:
		return bad("Epoch %d (the Producer-Epoch header) is outside [0, 2^53-1]", c.Epoch)
	case c.Linger < 0:
		return bad("Linger %s is negative", c.Linger)
	case c.MaxBatchBytes < 3:
		return bad("MaxBatchBytes %d is too small (at least 3: a JSON array of one 1-byte message)", c.MaxBatchBytes)
	case c.MaxInFlight < 1:
		return bad("MaxInFlight %d must be at least 1", c.MaxInFlight)
	case c.MaxBufferedBytes < c.MaxBatchBytes:
		return bad("MaxBufferedBytes %d is below MaxBatchBytes %d", c.MaxBufferedBytes, c.MaxBatchBytes)
	case c.Retry.MaxAttempts < 0 || c.Retry.InitialBackoff < 0 || c.Retry.MaxBackoff < 0 || c.Retry.MaxElapsed < 0 || c.Retry.MaxUnreachable < 0:
		return bad("Retry has a negative field: %+v", c.Retry)
	case c.Client == nil:
		return bad("Client is nil")
	case c.Client.RequestTimeout < 0:
		return bad("Client.RequestTimeout %s is negative", c.Client.RequestTimeout)
	}
	return nil
}
