package durablestreams

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/cloudevents"
	"github.com/durablestreams/watermill-durablestreams/internal/defaults"
	"github.com/durablestreams/watermill-durablestreams/internal/partition"
	"github.com/durablestreams/watermill-durablestreams/internal/producer"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// minBatchBytes fits the smallest request: a JSON array of one 1-byte message.
const minBatchBytes = 3

// PublisherConfig configures a Publisher. The zero value of every field but
// BaseURL (or TopicURL) is a working default.
type PublisherConfig struct {
	// BaseURL is the URL under which each topic is a stream, for example
	// http://127.0.0.1:4437/v1/stream. The topic is appended as one escaped
	// path segment. It must be an http or https URL with a host, without
	// query, fragment or whitespace, and with a port (if any) in 1-65535:
	// else NewPublisher fails with ErrInvalidConfig.
	BaseURL string
	// TopicURL, if set, maps a topic to its stream URL instead of BaseURL.
	TopicURL func(topic string) (string, error)

	// Marshaler turns messages into stream messages and decides the
	// stream's content type. Default: JSONMarshaler{}. A nil pointer
	// such as (*JSONMarshaler)(nil) is ErrInvalidConfig.
	Marshaler Marshaler

	// StreamTTL makes streams created by the Publisher expire this long
	// after their last write (whole seconds). Not with StreamExpiresAt.
	StreamTTL time.Duration
	// StreamExpiresAt makes streams created by the Publisher expire at a
	// fixed time. Not with StreamTTL, and not a time already past. Once it
	// has passed, a stream that must be created (again) is ErrStreamGone.
	StreamExpiresAt time.Time
	// StrictStreamSettings makes publishing to a stream that exists with
	// another TTL or expiry fail with ErrStreamConflict. Default: such a
	// stream is used as it is, with one warning per topic (logged at Info:
	// Watermill has no Warn level), so that changing StreamTTL between
	// two deploys never stops publishing to the topics that exist.
	StrictStreamSettings bool

	// ProducerID identifies the idempotent producers on the server. Empty
	// (the default) gives every Publisher a unique id, so that replicas
	// never fence each other. Set a stable id to fence zombies across
	// restarts: each new producer starts at a fresh, time-based epoch, so
	// a restarted service takes over from its old incarnation; with
	// DisableAutoClaim the old one then gets ErrStaleEpoch.
	ProducerID string
	// DisableAutoClaim makes a producer whose epoch was taken over by
	// another (HTTP 403) fail with ErrStaleEpoch instead of claiming the
	// next epoch and going on.
	DisableAutoClaim bool

	// Async makes Publish return once its messages are buffered, instead of
	// once the server has acknowledged them, also before the topic's
	// stream exists (the messages wait for its creation). Errors, a failed
	// creation's too, then go to OnAsyncError; Close flushes what is
	// buffered. With RetryPolicy.MaxUnreachable, a message that cannot
	// reach the server fails with ErrServerUnreachable after it: publish
	// it again from OnAsyncError to ride out a longer outage.
	Async bool
	// OnAsyncError receives the error of every message that failed after
	// an async Publish returned: one call at a time, in the order the
	// failures came, on a goroutine of the Publisher's own, so that it may
	// publish again (also into a full buffer) without holding up the
	// producers. Close returns once every call was made and returned,
	// waiting for them up to CloseTimeout after its flush (a hook that
	// calls Close itself waits that long). Default: log it.
	OnAsyncError func(topic string, messageUUID string, err error)

	// Linger is how long a batch may wait for more messages while earlier
	// batches are in flight. A message is sent at once when nothing is.
	// Default: 5ms.
	Linger time.Duration
	// MaxBatchBytes caps the body of one request. A message that cannot
	// fit alone is rejected. Default: 1 MiB.
	MaxBatchBytes int
	// MaxInFlight is how many requests per topic may be in flight at once.
	// Default: the producer's measured default.
	MaxInFlight int
	// MaxBufferedBytes bounds the bytes buffered per topic; Publish waits
	// for room beyond it. Default: 64 MiB.
	MaxBufferedBytes int

	// CloseTimeout bounds how long Close waits for buffered messages to be
	// acknowledged, and for the streams they wait for to be created. A
	// creation no caller waits for any more (its Publish gave up) is cut
	// at once. Default: 30s.
	CloseTimeout time.Duration
	// IdleProducerTimeout is how long a topic's producer may go unused
	// before it is flushed and released, so that a Publisher writing to
	// many topics keeps memory and goroutines bounded. Default: 1m.
	IdleProducerTimeout time.Duration

	// Partitions spreads each topic over this many streams (1 to 1024),
	// named "<topic>.p<i>" (a count of 1 keeps the topic's own stream): a
	// message goes to the partition of its key (FNV-1a of the key modulo
	// the count), so messages with one key keep their order; a message
	// without a key goes to partition 0. The count is recorded on the
	// server at the first publish to a topic and never changes: a
	// Publisher or Subscriber with another count gets
	// ErrPartitionMismatch. CloseStream closes every partition. Read such
	// topics with a ConsumerGroup without OffsetStore. Default (0): one
	// stream per topic (no check of a record: publish partitioned topics
	// with Partitions set).
	Partitions int
	// PartitionKey is the metadata key holding a message's partition key.
	// Default: "partition_key".
	PartitionKey string
	// PartitionFunc, if set, gives a message's partition key instead of
	// PartitionKey.
	PartitionFunc func(topic string, msg *message.Message) string

	// ClientConfig holds the HTTP client, headers, request timeout and
	// retry policy of every request the Publisher sends.
	ClientConfig
}

func (c *PublisherConfig) setDefaults() {
	if c.Marshaler == nil {
		c.Marshaler = JSONMarshaler{}
	}
	if c.Linger == 0 {
		c.Linger = defaults.Linger
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = defaults.MaxBatchBytes
	}
	if c.MaxBufferedBytes == 0 {
		c.MaxBufferedBytes = defaults.MaxBufferedBytes
	}
	c.ClientConfig.setDefaults()
	if c.CloseTimeout == 0 {
		c.CloseTimeout = defaults.CloseTimeout
	}
	if c.IdleProducerTimeout == 0 {
		c.IdleProducerTimeout = defaults.IdleProducerTimeout
	}
	if c.PartitionKey == "" {
		c.PartitionKey = defaults.PartitionKey
	}
}

// isByteMarshaler reports whether m is one of the library's byte-mode
// marshalers, whose StreamContentType must not be a JSON type.
func isByteMarshaler(m Marshaler) bool {
	switch m.(type) {
	case FramedMarshaler, *FramedMarshaler, LinesMarshaler, *LinesMarshaler:
		return true
	}
	return false
}

// Validate reports the first problem with the config.
func (c PublisherConfig) Validate() error {
	if err := validateBaseURL(c.BaseURL, c.TopicURL); err != nil {
		return err
	}
	if c.Marshaler == nil {
		return invalidConfig("Marshaler is nil")
	}
	if kind := nilReference(c.Marshaler); kind != "" {
		return invalidConfig("Marshaler is a nil %s (%T)", kind, c.Marshaler)
	}
	if c.Partitions < 0 || c.Partitions > partition.Max {
		return invalidConfig("Partitions %d is not in 0..%d", c.Partitions, partition.Max)
	}
	if c.Marshaler.ContentType() == "" {
		return invalidConfig("Marshaler.ContentType() is empty")
	}
	if isByteMarshaler(c.Marshaler) && cloudevents.IsJSONContentType(c.Marshaler.ContentType()) {
		return invalidConfig("%T writes byte-mode streams, but its StreamContentType %q is a JSON type", c.Marshaler, c.Marshaler.ContentType())
	}
	if err := checkStreamSettings(c.StreamTTL, c.StreamExpiresAt); err != nil {
		return err
	}
	if err := c.ClientConfig.validate(); err != nil {
		return err
	}
	if err := checkDurations(
		namedDuration{"Linger", c.Linger},
		namedDuration{"CloseTimeout", c.CloseTimeout},
		namedDuration{"IdleProducerTimeout", c.IdleProducerTimeout},
	); err != nil {
		return err
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"MaxBatchBytes", c.MaxBatchBytes}, {"MaxInFlight", c.MaxInFlight}, {"MaxBufferedBytes", c.MaxBufferedBytes}} {
		if n.v < 0 {
			return invalidConfig("%s is negative (%d)", n.name, n.v)
		}
	}
	if c.MaxBatchBytes > 0 && c.MaxBatchBytes < minBatchBytes {
		return invalidConfig("MaxBatchBytes %d is below %d: a request must fit a JSON array of one small message", c.MaxBatchBytes, minBatchBytes)
	}
	if c.MaxBufferedBytes > 0 && c.MaxBatchBytes > c.MaxBufferedBytes {
		return invalidConfig("MaxBatchBytes (%d) exceeds MaxBufferedBytes (%d)", c.MaxBatchBytes, c.MaxBufferedBytes)
	}

	if len(c.ProducerID) > 256 {
		return invalidConfig("ProducerID is longer than 256 bytes (the protocol's Producer-Id header)")
	}
	return nil
}

func validateBaseURL(base string, hook func(string) (string, error)) error {
	if hook != nil {
		return nil
	}
	if base == "" {
		return invalidConfig("BaseURL is empty (or set TopicURL)")
	}
	if reason := baseURLProblem(base); reason != "" {
		return invalidConfig("BaseURL %q %s", protocol.RedactURL(base), reason)
	}
	return nil
}

// baseURLProblem says why a base URL cannot work ("" if it can). Each
// case used to be accepted and then wrote where no reader looks: a query
// or fragment sent every topic into one stream (topics are appended to
// the path, and the reader adds its own query), whitespace became part of
// the path ("%20"), and a bad port or scheme was retried like an outage.
func baseURLProblem(base string) string {
	if i := strings.IndexFunc(base, unicode.IsSpace); i >= 0 {
		return fmt.Sprintf("contains whitespace at byte %d", i)
	}
	if !strings.Contains(base, "://") {
		return "must start with http:// or https://"
	}
	u, err := url.Parse(base)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL, credentials included
		}
		return "is not a URL: " + err.Error()
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "must start with http:// or https://"
	case u.Host == "":
		return "has no host"
	case u.RawQuery != "" || u.ForceQuery:
		return "has a query; the topic is appended to the path and a reader adds its own query"
	case u.Fragment != "" || strings.Contains(base, "#"):
		return "has a fragment, which is never sent to the server"
	}
	if u.Hostname() == "" {
		return "has no host"
	}
	if strings.HasSuffix(u.Host, ":") {
		return "has an empty port"
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Sprintf("has port %s, outside 1-65535", p)
		}
	}
	return ""
}

func (c *PublisherConfig) client(logger watermill.LoggerAdapter) (*protocol.Client, bool) {
	return c.ClientConfig.newClient(true, logger)
}

func (c *PublisherConfig) streamOptions() protocol.StreamOptions {
	return protocol.StreamOptions{
		ContentType: c.Marshaler.ContentType(),
		TTL:         c.StreamTTL,
		ExpiresAt:   c.StreamExpiresAt,
	}
}

// producerConfig configures every topic's producer; the registry sets
// what is the topic's own.
func (c *PublisherConfig) producerConfig(client *protocol.Client) producer.Config {
	return producer.Config{
		ContentType:      c.Marshaler.ContentType(),
		ProducerID:       c.ProducerID,
		AutoClaim:        !c.DisableAutoClaim,
		Linger:           c.Linger,
		MaxBatchBytes:    c.MaxBatchBytes,
		MaxInFlight:      c.MaxInFlight,
		MaxBufferedBytes: c.MaxBufferedBytes,
		Retry:            client.Retry,
		Client:           client,
	}
}

// partitionKey is the key that picks msg's partition of topic.
func (c *PublisherConfig) partitionKey(topic string, msg *message.Message) string {
	if c.PartitionFunc != nil {
		return c.PartitionFunc(topic, msg)
	}
	return msg.Metadata.Get(c.PartitionKey)
}

// detachedContext is for work that must finish even though the caller's
// context ended, such as flushing on Close.
func detachedContext(timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), timeout)
}
