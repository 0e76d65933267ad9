package durablestreams

import (
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
)

// ReadMode is how a subscription tails a stream once it has caught up.
type ReadMode int

const (
	// ReadLongPoll (the default) holds a GET open until data arrives.
	ReadLongPoll ReadMode = iota
	// ReadSSE keeps one server-sent-events connection open. On text/*
	// streams the SSE transport turns "\r\n" and "\r" into "\n"; use
	// long-poll for text streams whose data may hold carriage returns.
	ReadSSE
)

// StartFrom is where a subscription without a stored position starts.
type StartFrom int

const (
	// StartFromBeginning (the default) delivers every message in the stream.
	StartFromBeginning StartFrom = iota
	// StartFromTail delivers only messages appended after Subscribe.
	StartFromTail
)

// Subscriber defaults.
const (
	DefaultNackResendDelay = 100 * time.Millisecond
	// DefaultLiveTimeout bounds a long-poll request (and the silence on an
	// SSE connection); it must exceed the server's long-poll timeout,
	// which the reference server sets to 30s.
	DefaultLiveTimeout = 65 * time.Second
	// DefaultMaxReadBytes bounds the body of one read: 64 MiB.
	DefaultMaxReadBytes = 64 << 20
)

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	// BaseURL is the URL under which each topic is a stream, as for the
	// Publisher.
	BaseURL string
	// TopicURL, if set, maps a topic to its stream URL instead of BaseURL.
	TopicURL func(topic string) (string, error)

	// Unmarshaler rebuilds messages. Default: JSONMarshaler{}. For a
	// byte-mode stream it must also be a FrameSplitter.
	Unmarshaler Unmarshaler
	// ContentType is the content type SubscribeInitialize creates streams
	// with. Default: the Unmarshaler's, if it is also a Marshaler, else
	// application/json.
	ContentType string

	// Mode is long-poll (default) or SSE.
	Mode ReadMode
	// StartFrom applies when there is no stored position.
	StartFrom StartFrom

	// ConsumerGroup names the group whose position is kept in OffsetStore
	// per topic: a Subscribe resumes after the last acknowledged message
	// of its group. Empty: no stored position, every Subscribe starts at
	// StartFrom. Subscriptions of one group do not share work: each gets
	// every message after the stored position (fan-out, not load sharing);
	// run one subscription per group and topic.
	ConsumerGroup string
	// OffsetStore keeps the positions of ConsumerGroup. Required with a
	// ConsumerGroup: NewMemoryOffsetStore() or NewStreamOffsetStore(...).
	OffsetStore OffsetStore

	// CommitInterval spaces the writes of a group's position. Zero (the
	// default) stores the position after every ack, before the next
	// message is delivered: after a crash at most the message in flight
	// comes again. A positive interval stores it on the first ack after
	// the interval has passed, whenever the subscription has caught up
	// with the stream, and when it ends: one write per interval instead of
	// one per message, at the price of redelivering up to an interval's
	// worth of acked messages after a crash. Nothing is ever skipped.
	CommitInterval time.Duration

	// NackResendDelay is how long a nacked message waits before it is
	// delivered again.
	NackResendDelay time.Duration

	// OnUnmarshalError decides about a message the Unmarshaler rejects (a
	// poison message). Returning nil skips it: it counts as consumed and
	// its position is stored. Returning an error ends the subscription
	// (the channel is closed) without consuming it, so that the next
	// Subscribe of the group meets it again. Default: log the error and
	// skip.
	OnUnmarshalError func(topic string, data []byte, err error) error

	// LiveTimeout bounds a long-poll request; it must exceed the server's
	// long-poll timeout. Default: 65s.
	LiveTimeout time.Duration
	// MaxReadBytes bounds the body of one read (a hostile server cannot
	// make the subscriber buffer more). Default: 64 MiB.
	MaxReadBytes int64

	// ClientConfig holds the HTTP client, headers, request timeout (of
	// catch-up reads and every other request) and retry policy. When the
	// retries of a read run out, the subscription logs the error, waits
	// RetryPolicy.MaxBackoff and goes on: only Close, the Subscribe
	// context, or a closed, deleted or gone stream end it. Our own HTTP
	// client asks for no compressed reads; a client given here keeps its
	// own choice.
	ClientConfig
}

func (c *SubscriberConfig) setDefaults() {
	if c.Unmarshaler == nil {
		c.Unmarshaler = JSONMarshaler{}
	}
	if c.ContentType == "" {
		c.ContentType = protocol.ContentTypeJSON
		if m, ok := c.Unmarshaler.(Marshaler); ok && m.ContentType() != "" {
			c.ContentType = m.ContentType()
		}
	}
	if c.NackResendDelay == 0 {
		c.NackResendDelay = DefaultNackResendDelay
	}
	c.ClientConfig.setDefaults()
	if c.LiveTimeout == 0 {
		c.LiveTimeout = DefaultLiveTimeout
	}
	if c.MaxReadBytes == 0 {
		c.MaxReadBytes = DefaultMaxReadBytes
	}
}

// Validate reports the first problem with the config.
func (c SubscriberConfig) Validate() error {
	if err := validateBaseURL(c.BaseURL, c.TopicURL); err != nil {
		return err
	}
	if c.Unmarshaler == nil {
		return invalidConfig("Unmarshaler is nil")
	}
	if c.ContentType == "" {
		return invalidConfig("ContentType is empty")
	}
	if !protocol.IsJSON(c.ContentType) {
		if _, ok := c.Unmarshaler.(FrameSplitter); !ok {
			return invalidConfig("ContentType %q is byte mode, but the Unmarshaler %T is no FrameSplitter", c.ContentType, c.Unmarshaler)
		}
	}
	if c.Mode != ReadLongPoll && c.Mode != ReadSSE {
		return invalidConfig("unknown Mode %d", c.Mode)
	}
	if c.StartFrom != StartFromBeginning && c.StartFrom != StartFromTail {
		return invalidConfig("unknown StartFrom %d", c.StartFrom)
	}
	if c.ConsumerGroup != "" && c.OffsetStore == nil {
		return invalidConfig("ConsumerGroup %q needs an OffsetStore", c.ConsumerGroup)
	}
	if err := c.ClientConfig.validate(); err != nil {
		return err
	}
	if err := checkDurations(
		namedDuration{"NackResendDelay", c.NackResendDelay},
		namedDuration{"CommitInterval", c.CommitInterval},
		namedDuration{"LiveTimeout", c.LiveTimeout},
	); err != nil {
		return err
	}
	if c.MaxReadBytes < 0 {
		return invalidConfig("MaxReadBytes is negative (%d)", c.MaxReadBytes)
	}
	return nil
}

func (c *SubscriberConfig) client() (*protocol.Client, bool) { return c.ClientConfig.newClient(false) }

func (c *SubscriberConfig) readMode() reader.Mode {
	if c.Mode == ReadSSE {
		return reader.SSE
	}
	return reader.LongPoll
}
