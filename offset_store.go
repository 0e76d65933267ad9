package durablestreams

import (
	"context"
	"sync"
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
