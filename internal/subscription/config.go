package subscription

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
)

// EveryAck as CommitInterval stores the position after every ack (the
// root's EveryAck).
const EveryAck time.Duration = -1

// Unmarshaler is the root's Unmarshaler, declared here so that this
// package needs nothing of the root.
type Unmarshaler interface {
	Unmarshal(topic string, data []byte) (*message.Message, error)
}

// Splitter is the root's FrameSplitter: a byte-mode Unmarshaler is one.
type Splitter interface {
	Split(data []byte, atEOF bool) (advance int, frame []byte, err error)
}

// Config is what one subscription is given: plain values, the root's
// settings already resolved, and funcs for what the root decides.
type Config struct {
	// Topic is what the Unmarshaler and the logs are told; the stream
	// (StreamURL) may be one of its partitions.
	Topic     string
	StreamURL string
	Fields    watermill.LogFields
	Logger    watermill.LoggerAdapter
	Client    *protocol.Client
	// Out receives each delivery.
	Out chan<- *message.Message

	Mode         reader.Mode
	LiveTimeout  time.Duration
	MaxReadBytes int64
	// MaxBackoff is the RetryPolicy's, the wait after retries ran out.
	MaxBackoff  time.Duration
	ContentType string

	// Unmarshaler decodes each frame; in byte mode it must also be a
	// Splitter.
	Unmarshaler      Unmarshaler
	OnUnmarshalError func(topic string, data []byte, err error) error
	// OffsetKey and IndexKey name the metadata that locates a delivered
	// message (the root's MetadataOffset and MetadataIndex).
	OffsetKey, IndexKey string

	HandoverTimeout time.Duration
	NackResendDelay time.Duration
	// Valid, when set, must hold before each delivery (a lease's local
	// deadline).
	Valid func() bool
	// WithDelivery, when set, gives each delivery's context what it
	// carries besides (a consumer group's exactly-once transaction): the
	// message's ordinal (Pos.N) and UUID.
	WithDelivery func(ctx context.Context, ordinal int64, uuid string) context.Context

	// LostGoOnFrom is where the subscription goes on when the stream
	// cannot honour its position: reader.OffsetBeginning,
	// reader.OffsetNow (the stream's tail), or "" to stop.
	LostGoOnFrom string
	// Store, when set, stores where the subscription stands (a group's
	// lease or a checkpoint), within CommitInterval (or EveryAck), each
	// write bounded by CommitTimeout.
	Store          func(ctx context.Context, pos Pos) error
	CommitInterval time.Duration
	CommitTimeout  time.Duration
}

// New returns a subscription that starts at start; Run runs it. A Store
// starts its committer now.
func New(cfg Config, start Pos) *Subscription {
	sub := &Subscription{cfg: cfg, pos: start}
	if cfg.Store != nil {
		sub.positions = newCommitter(cfg.Store, cfg.CommitInterval, cfg.CommitTimeout, cfg.Logger, cfg.Fields)
	}
	return sub
}
