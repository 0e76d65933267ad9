package topics

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/partition"
	"github.com/durablestreams/watermill-durablestreams/internal/producer"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// Config is what a Registry needs of its Publisher.
type Config struct {
	// Producer configures every topic's producer; the Registry sets its
	// URL, Gate, Epoch and Logger.
	Producer producer.Config
	Logger   watermill.LoggerAdapter
	// Reach tells why a stream's creation takes long (waitEnded).
	Reach *protocol.Reach
	// IdleTimeout: a producer unused for longer is released.
	IdleTimeout time.Duration
	// CloseTimeout bounds the flush of a producer that is released, and
	// the close of one whose stream could not be created.
	CloseTimeout time.Duration

	// Create creates a topic's stream, its error worded for users; when
	// ctx ended first, the error matches Closed.
	Create func(ctx context.Context, topic, streamURL string) error
	// Public gives an error of a producer its public form.
	Public func(error) error
	// Wrap adds context to an error, as the root package words errors.
	Wrap func(err error, format string, args ...any) error
	// Closed is the error of a Registry used after Close.
	Closed error
	// Trace: log a Trace entry per message (the logger may keep them;
	// building one costs several allocations).
	Trace bool
	// OnAsyncError gets the failures of async messages, in their public
	// form, one at a time on a goroutine of the Registry's (hookQueue);
	// when nil they are logged.
	OnAsyncError func(topic, uuid string, err error)

	// What a Publish and a CloseStream need of the Publisher.
	Publishing
}

// Publishing is what a Publish and a CloseStream need of the Publisher:
// its settings, and the root package's hooks that word its errors.
type Publishing struct {
	// URL maps a stream's name to its URL.
	URL func(stream string) (string, error)
	// Marshal marshals a message for the stream named stream.
	Marshal func(stream string, msg *message.Message) ([]byte, error)
	// ValidJSON: Marshal's output is valid JSON by construction, so only
	// its size is checked (the producer's JSON check is the costliest
	// step of a Publish).
	ValidJSON bool
	// Async: Publish returns once the messages are buffered.
	Async bool
	// Partitions spreads each topic over as many streams (0: none), by
	// PartitionKey; Parts names them and remembers their counts.
	Partitions   int
	PartitionKey func(topic string, msg *message.Message) string
	Parts        *partition.Topics

	// Errorf wraps an error where it leaves the root package, as that
	// package words errors.
	Errorf func(err error, format string, args ...any) error
	// NilMessage is the error of a nil message.
	NilMessage error
}
