package durablestreams

import (
	"context"
	"net/url"
	"strings"
	"sync"

	"github.com/durablestreams/watermill-durablestreams/internal/defaults"
	"github.com/durablestreams/watermill-durablestreams/internal/naming"
	"github.com/durablestreams/watermill-durablestreams/internal/positionlog"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// Position is where a consumer group stands in a topic's stream: after the
// server offset Offset, Skip messages were already acknowledged. An offset
// names the end of a whole append (a POST batch) and a read from it returns
// every later message, so the count says how far into that read the group
// got. Offset "-1" is the start of the stream.
type Position struct {
	Offset string `json:"offset"` // a server offset; "-1" is the start
	Skip   int    `json:"skip"`   // messages acknowledged after Offset
}

// OffsetStore keeps consumer-group positions. Implementations must be safe
// for concurrent use.
type OffsetStore interface {
	// Load returns the stored position of group in topic; ok is false when
	// there is none.
	Load(ctx context.Context, group, topic string) (pos Position, ok bool, err error)
	// Store records pos as the position of group in topic.
	Store(ctx context.Context, group, topic string, pos Position) error
}

// MemoryOffsetStore keeps positions in memory: they survive a Subscribe
// after Close within the process (and are shared by every Subscriber given
// the same store), but not a restart.
type MemoryOffsetStore struct {
	mu  sync.Mutex
	pos map[[2]string]Position
}

// NewMemoryOffsetStore returns an empty in-process store.
func NewMemoryOffsetStore() *MemoryOffsetStore {
	return &MemoryOffsetStore{pos: make(map[[2]string]Position)}
}

// Load implements OffsetStore.
func (s *MemoryOffsetStore) Load(_ context.Context, group, topic string) (Position, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pos[[2]string{group, topic}]
	return p, ok, nil
}

// Store implements OffsetStore.
func (s *MemoryOffsetStore) Store(_ context.Context, group, topic string, pos Position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pos[[2]string{group, topic}] = pos
	return nil
}

// StreamOffsetStoreConfig configures a StreamOffsetStore.
type StreamOffsetStoreConfig struct {
	// BaseURL is where the position streams live, usually the
	// Subscriber's BaseURL: positions go under BaseURL/__offsets/.
	BaseURL string
	// RotateEvery bounds a log: after that many positions the store moves
	// on to a new log, so that Load reads at most about this many records
	// plus one pointer per rotation. Default: 1000.
	RotateEvery int

	// ClientConfig holds the HTTP client, headers, request timeout and
	// retry policy of the store's requests.
	ClientConfig
}

func (c *StreamOffsetStoreConfig) setDefaults() {
	if c.RotateEvery == 0 {
		c.RotateEvery = defaults.RotateEvery
	}
	c.ClientConfig.setDefaults()
}

// Validate reports the first problem with the config.
func (c StreamOffsetStoreConfig) Validate() error {
	if err := validateBaseURL(c.BaseURL, nil); err != nil {
		return err
	}
	if c.RotateEvery < 0 {
		return invalidConfig("RotateEvery is negative (%d)", c.RotateEvery)
	}
	return c.ClientConfig.validate()
}

// StreamOffsetStore keeps positions on the Durable Streams server itself,
// so it needs no other infrastructure. Per group and topic it writes JSON
// streams under BaseURL/__offsets/<group>/<topic>: that stream holds
// pointers to the current log, and each log (…/<topic>/<n>) takes one
// record per Store. Store appends and returns once the server has
// acknowledged the append; Load reads the pointers and the current log and
// takes the last record. A group (a Subscriber's Checkpoint) or topic
// that cannot be one path segment there, such as "__ds", the protocol's
// reserved segment, fails with ErrInvalidConfig or ErrInvalidTopic
// before any request; a Subscriber with such a Checkpoint fails so at
// Subscribe.
//
// After a crash of the subscriber, the stored position is that of the
// last message whose Store returned: a message acked but not yet stored
// comes again (at-least-once); no message is skipped, since a position is
// stored only after its message was acked. A rotation writes the position
// into the new log before it points to it, so a crash mid-rotation loses
// nothing either.
//
// Close it when done: it drops the idle connections of its own HTTP
// client.
type StreamOffsetStore struct {
	base   string
	client *protocol.Client
	// ownHTTP: the HTTP client is ours, so Close drops its idle connections.
	ownHTTP bool
	logs    *positionlog.Logs[Position]
}

// NewStreamOffsetStore returns a store on the server at config.BaseURL.
func NewStreamOffsetStore(config StreamOffsetStoreConfig) (*StreamOffsetStore, error) {
	config.setDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	client, ownHTTP := config.ClientConfig.newClient(true, nil)
	return &StreamOffsetStore{
		base:    strings.TrimRight(config.BaseURL, "/") + "/" + naming.OffsetsRoot,
		client:  client,
		ownHTTP: ownHTTP,
		logs: positionlog.New[Position](positionlog.Config{
			Client:      client,
			RetryPolicy: client.Retry,
			RotateEvery: config.RotateEvery,
		}),
	}, nil
}

// Close drops the idle connections of the store's own HTTP client (one
// given in the config is left alone). A request after Close opens a new
// connection; Close is safe to call more than once.
func (s *StreamOffsetStore) Close() error {
	if s.ownHTTP {
		s.client.HTTP.CloseIdleConnections()
	}
	return nil
}

// rootURL is the stream that points to the current log of group in topic.
// The group becomes a path segment, so it is checked as a topic is.
func (s *StreamOffsetStore) rootURL(group, topic string) (string, error) {
	if reason := naming.SegmentProblem(group); group == "" || reason != "" {
		return "", invalidConfig("consumer group %q cannot name a stream: %s", group, reason)
	}
	return topicURL(s.base+"/"+url.PathEscape(group), nil, topic)
}

// Load implements OffsetStore.
func (s *StreamOffsetStore) Load(ctx context.Context, group, topic string) (Position, bool, error) {
	pos, ok, err := s.loadPosition(ctx, group, topic)
	if err != nil {
		return Position{}, false, errorf(err, "load position of checkpoint %q in %q", group, topic)
	}
	return pos, ok, nil
}

func (s *StreamOffsetStore) loadPosition(ctx context.Context, group, topic string) (Position, bool, error) {
	root, err := s.rootURL(group, topic)
	if err != nil {
		return Position{}, false, err
	}
	return s.logs.Load(ctx, root)
}

// Store implements OffsetStore.
func (s *StreamOffsetStore) Store(ctx context.Context, group, topic string, pos Position) error {
	root, err := s.rootURL(group, topic)
	if err == nil {
		err = s.logs.Store(ctx, root, pos)
	}
	if err != nil {
		return errorf(err, "store position of checkpoint %q in %q", group, topic)
	}
	return nil
}
