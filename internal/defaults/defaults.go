// Package defaults holds the default values of the public configuration:
// the root package fills zero fields with them, and the tests (the root's
// and the system tests) read them here. The doc comment of each field
// says its value; the root's TestDefaultsShowTheirValues keeps the two
// together.
package defaults

import "time"

// PublisherConfig.
const (
	Linger              = 5 * time.Millisecond
	MaxBatchBytes       = 1 << 20
	MaxBufferedBytes    = 64 << 20
	CloseTimeout        = 30 * time.Second
	IdleProducerTimeout = time.Minute
)

// RequestTimeout bounds each HTTP request when ClientConfig.RequestTimeout
// is zero.
const RequestTimeout = 30 * time.Second

// SubscriberConfig.
const (
	NackResendDelay = 100 * time.Millisecond
	// LiveTimeout bounds a long-poll request (and the silence on an SSE
	// connection); it must exceed the server's long-poll timeout, which
	// the reference server sets to 30s.
	LiveTimeout = 65 * time.Second
	// MaxReadBytes bounds the body of one read: 64 MiB.
	MaxReadBytes = 64 << 20
	// HandoverTimeout bounds the wait for a message in a handler's hands
	// when a subscription stops: well inside a Kubernetes termination
	// grace period (30s) with room for the final writes and the leave,
	// inside the Router's CloseTimeout (30s), which waits for the handlers
	// after it closed the subscriber, and inside the 15s in which
	// Watermill's universal tests expect a held message's context to end
	// after Close.
	HandoverTimeout = 10 * time.Second
)

// A ConsumerGroup (see SubscriberConfig), chosen from measurements (see
// internal/group): a dead member is replaced after about 10 s; a member
// that leaves hands over in milliseconds.
const (
	SessionTimeout    = 10 * time.Second
	HeartbeatInterval = time.Second
)

// MaxFrameBytes is the frame size limit of FramedMarshaler and
// LinesMarshaler when MaxFrameBytes is zero.
const MaxFrameBytes = 16 << 20

// RotateEvery is how many positions a StreamOffsetStore log takes before
// the store starts a new one.
const RotateEvery = 1000

// PartitionKey is the metadata key PublisherConfig.PartitionKey defaults
// to, which KeyCommands and KeyEvents set.
const PartitionKey = "partition_key"
