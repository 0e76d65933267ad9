package durablestreams

import (
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/durablestreams/watermill-durablestreams/internal/defaults"
	"github.com/durablestreams/watermill-durablestreams/internal/group"
	"github.com/durablestreams/watermill-durablestreams/internal/naming"
	"github.com/durablestreams/watermill-durablestreams/internal/partition"
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
	// StartFromTail delivers only messages appended after the tail that
	// Subscribe takes before it returns. A ConsumerGroup stores that tail
	// as its position before Subscribe returns, so a next run goes on
	// from it even if this one stopped before its first commit. When the
	// server cannot be reached at Subscribe, the tail is the one it shows
	// at its first answer (polled within about 250ms of its return), which
	// is logged at Error: what was appended before it is not delivered.
	// Subscribe fails with ErrServerUnreachable if the server does not
	// answer within RetryPolicy.MaxUnreachable.
	StartFromTail
)

// PositionLost is what a subscription does when its group's stored
// position is one the stream cannot honour: the stream was deleted and
// recreated, or truncated, so the stored offset lies past its tail (or
// the server answers 410 Gone or 400 for it), or fewer messages follow it
// than the position says were consumed.
// A stream missing (404) after the server could not be reached (a
// restart lost it: an in-memory server comes back empty) is such a case
// too, for a subscription with or without a group.
// Each case is logged at Error with the group, the topic, the stored
// position and where the stream stands. A stream recreated that has grown
// past the stored offset by the time the group reads it again cannot be
// told from the old one (streams carry no identity): the group goes on
// from the stored offset and skips what the new stream holds before it.
// Reset the groups' positions when you recreate a stream (see the README).
type PositionLost int

const (
	// PositionLostFromStart (the default) reads what the stream holds now
	// from its start: nothing that is in the stream is skipped.
	PositionLostFromStart PositionLost = iota
	// PositionLostFromTail goes on with the messages appended from now on;
	// that tail is stored as the group's position at once.
	PositionLostFromTail
	// PositionLostStop ends the subscription (its channel is closed) and
	// leaves the stored position as it is, for an operator to decide.
	PositionLostStop
)

// goOnFrom is where a subscription goes on from a lost position, in the
// reader's offsets; "" stops it.
func (l PositionLost) goOnFrom() string {
	switch l {
	case PositionLostFromTail:
		return reader.OffsetNow
	case PositionLostStop:
		return ""
	}
	return reader.OffsetBeginning
}

// CommitEveryAck as CommitInterval stores the position after every ack,
// before the next message is delivered: one write per message.
const CommitEveryAck time.Duration = -1

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	// BaseURL is the URL under which each topic is a stream, as for the
	// Publisher. A sharing ConsumerGroup needs it even with TopicURL: its
	// streams live under BaseURL/__groups/.
	BaseURL string
	// TopicURL, if set, maps a topic to its stream URL instead of BaseURL.
	TopicURL func(topic string) (string, error)

	// Unmarshaler rebuilds messages. Default: JSONMarshaler{}. For a
	// byte-mode stream it must also be a FrameSplitter. A nil pointer
	// such as (*JSONMarshaler)(nil) is ErrInvalidConfig.
	Unmarshaler Unmarshaler
	// ContentType is the content type SubscribeInitialize creates streams
	// with. Default: the Unmarshaler's, if it is also a Marshaler, else
	// application/json.
	ContentType string

	// Mode is long-poll (default) or SSE.
	Mode ReadMode
	// StartFrom applies when there is no stored position.
	StartFrom StartFrom

	// ConsumerGroup names a group of subscriptions, usually the replicas
	// of one service, that share the work: each message goes to one member
	// at a time, in stream order, at-least-once, as in Kafka, Redis
	// Streams, SQL and NATS JetStream consumer groups. A topic of one
	// stream has one active member, the others stand by; a partitioned
	// topic has its partitions shared out. A member that stops hands its
	// streams over once the message in its handler's hands is acked (see
	// HandoverTimeout); one that dies is replaced after SessionTimeout.
	// Positions are kept on the server, in streams under BaseURL/__groups/
	// written fenced, so a member that lost a stream stores nothing there
	// (ErrFenced). Fan-out is what different groups are for. Such a group
	// needs BaseURL, also with TopicURL; a nested topic (TopicURL) works
	// when none of its parts between slashes is empty, a dot segment,
	// "members" or "streams" (else ErrInvalidTopic). NewSubscriber checks
	// the group's settings as Subscribe would, with the defaults filled
	// in. A ConsumerGroup with an OffsetStore is ErrInvalidConfig: use
	// Checkpoint for one reader that resumes at a stored position. Empty:
	// no group.
	ConsumerGroup string
	// Checkpoint names the stored position of one reader: a Subscribe
	// resumes after the last message acknowledged under this name, kept in
	// OffsetStore (NewMemoryOffsetStore() or NewStreamOffsetStore(...)).
	// It shares no work: two subscriptions with one Checkpoint each get
	// every message and overwrite each other's position (a second live
	// Subscribe of one Subscriber to one topic under it is
	// ErrInvalidConfig). For several replicas that share the work, use
	// ConsumerGroup. Needs OffsetStore.
	Checkpoint string
	// OffsetStore keeps the Checkpoint's position. Needs Checkpoint.
	OffsetStore OffsetStore
	// MemberID names this member of a sharing ConsumerGroup; unique among
	// the live members. Default: a random UUID per Subscribe. A member
	// restarted with the same ID takes its streams back at once. If two
	// live instances share one ID, the one that joined last wins: the
	// older one loses its streams, logs an Error naming the ID and its
	// subscription ends (the channel closes). A second live Subscribe of
	// one Subscriber to one topic under a MemberID is ErrInvalidConfig.
	MemberID string
	// SessionTimeout is how long a silent member of a sharing ConsumerGroup
	// counts as alive: it bounds the failover after a crash. Default: 10s.
	SessionTimeout time.Duration
	// HeartbeatInterval is how often a member of a sharing ConsumerGroup
	// says it is alive; at most a third of SessionTimeout (the default
	// SessionTimeout when that is left zero). Default: 1s.
	HeartbeatInterval time.Duration
	// Partitions is the partition count of the topics a sharing
	// ConsumerGroup reads, as their publishers set it. Zero reads it from
	// the server, and records 1 when none is recorded yet (so that a
	// publisher with another count gets ErrPartitionMismatch).
	Partitions int

	// CommitInterval spaces the writes of the position of a
	// ConsumerGroup or Checkpoint. Default (0): one write in flight at a
	// time, the next one as soon as it lands, carrying the latest ack;
	// delivery never waits for it. After a crash, what comes again is the
	// message in hand and those acked while the last write was on the
	// wire. A CommitInterval above zero writes at most once per interval
	// (after a crash, the messages acked within the last interval may come
	// again); CommitEveryAck writes after every ack, before the next
	// delivery (one write per message). Every clean stop (Close, the
	// Subscribe context, a handover, the end of the stream, an error)
	// stores the last position first; nothing is ever skipped.
	CommitInterval time.Duration
	// HandoverTimeout bounds how long a stop (Close, the end of the
	// Subscribe context, Router.Close, a rebalance of a ConsumerGroup)
	// waits for the message a handler holds to be acked or nacked, with
	// its context still live, before the position is stored and the
	// stream handed over: a rolling deploy then hands nothing over twice.
	// A handler that does not answer in time has its message's context
	// cancelled and the message is delivered again (an Error is logged
	// naming it). Applies to a ConsumerGroup or Checkpoint; without one,
	// a stop does not wait. Default: 10s; well below a Kubernetes
	// termination grace period and the Router's CloseTimeout, both 30s.
	HandoverTimeout time.Duration
	// OnPositionLost decides what happens when the stored position is one
	// the stream cannot honour (it was deleted and recreated, or
	// truncated). Default: PositionLostFromStart. Each case the stream
	// shows is logged at Error; a recreated stream that has grown past
	// the stored offset shows nothing (see PositionLost).
	OnPositionLost PositionLost

	// NackResendDelay is how long a nacked message waits before it is
	// delivered again, as a fresh copy of the message read: what the
	// handler changed in it is not carried over (the Payload's bytes are
	// shared, so do not change them in place). A position write that
	// falls due meanwhile is done. Default: 100ms.
	NackResendDelay time.Duration

	// OnUnmarshalError decides about a message the Unmarshaler rejects (a
	// poison message, e.g. another writer's data). Returning nil skips it:
	// it counts as consumed and its position is stored. Returning an error
	// ends the subscription (the channel is closed) without consuming it.
	// Default (nil): log the error at Error, naming the offset, and end
	// the subscription, so that a group's position never moves past a
	// message nobody handled; the next Subscribe meets it again. To skip
	// such messages, give a hook that returns nil.
	OnUnmarshalError func(topic string, data []byte, err error) error

	// StreamTTL is the TTL SubscribeInitialize creates streams with (whole
	// seconds), as PublisherConfig.StreamTTL. Not with StreamExpiresAt.
	StreamTTL time.Duration
	// StreamExpiresAt is the expiry SubscribeInitialize creates streams
	// with, as PublisherConfig.StreamExpiresAt.
	StreamExpiresAt time.Time
	// StrictStreamSettings makes SubscribeInitialize fail with
	// ErrStreamConflict on a stream that exists with another TTL or
	// expiry. Default: such a stream is used as it is, with one warning
	// per topic (logged at Info: Watermill has no Warn level).
	StrictStreamSettings bool

	// LiveTimeout bounds a long-poll request; it must exceed the server's
	// long-poll timeout. Default: 65s.
	LiveTimeout time.Duration
	// MaxReadBytes bounds one message (a JSON-mode element or a byte-mode
	// frame) and what one SSE batch buffers: a hostile server cannot make
	// the subscriber buffer more. A catch-up or long-poll answer of any
	// size is decoded as it arrives; an SSE batch over the bound is read
	// again by catch-up GETs, so it is delivered too. A message over the
	// bound ends the subscription before it, with an error logged.
	// Default: 64 MiB.
	MaxReadBytes int64

	// ClientConfig holds the HTTP client, headers, request timeout (for a
	// read: the longest wait on the network for its answer or the next
	// part of its body, so a slow handler never cuts its own read short)
	// and retry policy. When the
	// retries of a read run out, the subscription logs the error, waits
	// RetryPolicy.MaxBackoff and goes on: only Close, the Subscribe
	// context, or a closed, deleted or gone stream end it. A server that
	// cannot be reached is logged at Error at the first failed request,
	// then every 10s while it lasts, and at Info when it answers; a
	// refused connection is tried again within 250ms, so that a restarted
	// server is read at once. Our own HTTP client asks for no compressed
	// reads; a client given here keeps its own choice.
	ClientConfig
}

func (c *SubscriberConfig) setDefaults() {
	if c.Unmarshaler == nil {
		c.Unmarshaler = JSONMarshaler{}
	}
	if c.ContentType == "" {
		c.ContentType = protocol.ContentTypeJSON
		// A nil pointer has no content type to ask: Validate refuses it.
		if m, ok := c.Unmarshaler.(Marshaler); ok && nilReference(m) == "" && m.ContentType() != "" {
			c.ContentType = m.ContentType()
		}
	}
	if c.HandoverTimeout == 0 {
		c.HandoverTimeout = defaults.HandoverTimeout
	}
	if c.NackResendDelay == 0 {
		c.NackResendDelay = defaults.NackResendDelay
	}
	c.ClientConfig.setDefaults()
	if c.LiveTimeout == 0 {
		c.LiveTimeout = defaults.LiveTimeout
	}
	if c.MaxReadBytes == 0 {
		c.MaxReadBytes = defaults.MaxReadBytes
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
	if kind := nilReference(c.Unmarshaler); kind != "" {
		return invalidConfig("Unmarshaler is a nil %s (%T)", kind, c.Unmarshaler)
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
	if err := c.validateGroup(); err != nil {
		return err
	}
	if c.OnPositionLost < PositionLostFromStart || c.OnPositionLost > PositionLostStop {
		return invalidConfig("unknown OnPositionLost %d", c.OnPositionLost)
	}
	if c.CommitInterval < 0 && c.CommitInterval != CommitEveryAck {
		return invalidConfig("CommitInterval is negative (%s); CommitEveryAck stores after every ack", c.CommitInterval)
	}
	if err := checkStreamSettings(c.StreamTTL, c.StreamExpiresAt); err != nil {
		return err
	}
	if err := c.ClientConfig.validate(); err != nil {
		return err
	}
	if err := checkDurations(
		namedDuration{"NackResendDelay", c.NackResendDelay},
		namedDuration{"LiveTimeout", c.LiveTimeout},
		namedDuration{"HandoverTimeout", c.HandoverTimeout},
	); err != nil {
		return err
	}
	if c.MaxReadBytes < 0 {
		return invalidConfig("MaxReadBytes is negative (%d)", c.MaxReadBytes)
	}
	return nil
}

// namesOne: a subscription of this config is one named member of a
// group (MemberID) or one named reader (Checkpoint).
func (c *SubscriberConfig) namesOne() bool {
	return c.Checkpoint != "" || c.sharesWork() && c.MemberID != ""
}

func (c *SubscriberConfig) oneName() string {
	if c.Checkpoint != "" {
		return fmt.Sprintf("Checkpoint %q", c.Checkpoint)
	}
	return fmt.Sprintf("MemberID %q of ConsumerGroup %q", c.MemberID, c.ConsumerGroup)
}

func (c *SubscriberConfig) oneKind() string {
	if c.Checkpoint != "" {
		return "reader"
	}
	return "member"
}

// sharesWork: a ConsumerGroup, whose members share the topic's streams.
func (c *SubscriberConfig) sharesWork() bool { return c.ConsumerGroup != "" }

// validateGroup checks the settings of a ConsumerGroup, which mean
// nothing without one, and of a Checkpoint.
func (c SubscriberConfig) validateGroup() error {
	switch {
	case c.ConsumerGroup != "" && c.OffsetStore != nil:
		return invalidConfig("ConsumerGroup with an OffsetStore: a ConsumerGroup shares the work among its members and keeps its positions on the server itself. " +
			"For one reader that resumes at a stored position (every subscription gets every message), set Checkpoint instead of ConsumerGroup; to share the work, drop OffsetStore")
	case c.ConsumerGroup != "" && c.Checkpoint != "":
		return invalidConfig("ConsumerGroup and Checkpoint are exclusive: a ConsumerGroup keeps its own positions")
	case c.Checkpoint != "" && c.OffsetStore == nil:
		return invalidConfig("Checkpoint needs an OffsetStore (NewMemoryOffsetStore() or NewStreamOffsetStore(...))")
	case c.Checkpoint == "" && c.OffsetStore != nil:
		return invalidConfig("OffsetStore needs a Checkpoint: the name its position is stored under")
	}
	if !c.sharesWork() {
		if c.MemberID != "" || c.SessionTimeout != 0 || c.HeartbeatInterval != 0 || c.Partitions != 0 {
			return invalidConfig("MemberID, SessionTimeout, HeartbeatInterval and Partitions need a ConsumerGroup")
		}
		return nil
	}
	if c.Partitions < 0 || c.Partitions > partition.Max {
		return invalidConfig("Partitions %d is not in 0..%d", c.Partitions, partition.Max)
	}
	// The group's streams live under BaseURL, whatever TopicURL says.
	if c.TopicURL != nil && c.BaseURL == "" {
		return invalidConfig("ConsumerGroup needs BaseURL, also with TopicURL: the group's streams live under BaseURL/%s/", naming.GroupsRoot)
	}
	if err := validateBaseURL(c.BaseURL, nil); err != nil {
		return err
	}
	for _, n := range [][2]string{{"ConsumerGroup", c.ConsumerGroup}, {"MemberID", c.MemberID}} {
		if reason := group.NameProblem(n[1]); reason != "" && (n[1] != "" || n[0] != "MemberID") {
			return invalidConfig("%s %q %s", n[0], n[1], reason)
		}
	}
	if err := checkDurations(
		namedDuration{"SessionTimeout", c.SessionTimeout},
		namedDuration{"HeartbeatInterval", c.HeartbeatInterval},
	); err != nil {
		return err
	}
	// The rest as Join checks it, after the defaults it fills in, so that
	// NewSubscriber rejects whatever Subscribe would.
	probe := group.Config{
		BaseURL: c.BaseURL, Group: c.ConsumerGroup, Topic: "t", Streams: []string{"t"},
		MemberID: c.MemberID, SessionTimeout: c.SessionTimeout, HeartbeatInterval: c.HeartbeatInterval,
	}
	if err := probe.CheckWithDefaults(); err != nil {
		return invalidConfig("%s", strings.TrimPrefix(err.Error(), ErrInvalidConfig.Error()+": "))
	}
	return nil
}

func (c *SubscriberConfig) client(logger watermill.LoggerAdapter) (*protocol.Client, bool) {
	return c.ClientConfig.newClient(false, logger)
}

func (c *SubscriberConfig) readMode() reader.Mode {
	if c.Mode == ReadSSE {
		return reader.SSE
	}
	return reader.LongPoll
}

// checkStreamSettings checks a TTL and expiry as the protocol takes them.
func checkStreamSettings(ttl time.Duration, expiresAt time.Time) error {
	switch {
	case ttl < 0:
		return invalidConfig("StreamTTL is negative")
	case ttl > 0 && ttl < time.Second:
		return invalidConfig("StreamTTL %s is below the protocol's 1s resolution", ttl)
	case ttl > 0 && !expiresAt.IsZero():
		return invalidConfig("StreamTTL and StreamExpiresAt are exclusive")
	case !expiresAt.IsZero() && !expiresAt.After(time.Now()):
		return invalidConfig("StreamExpiresAt %s has passed: no stream can be created with it", expiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

func (c *SubscriberConfig) streamOptions() protocol.StreamOptions {
	return protocol.StreamOptions{ContentType: c.ContentType, TTL: c.StreamTTL, ExpiresAt: c.StreamExpiresAt}
}
