package producer

import (
	"errors"
	"fmt"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// Sentinels of the producer; the root package re-exports them.
var (
	// ErrProducerClosed: Append after Close, or a message still pending
	// when Close gave up waiting.
	ErrProducerClosed = errors.New("producer is closed")
	// ErrMessageTooLarge: the message cannot fit in a request of
	// MaxBatchBytes even alone.
	ErrMessageTooLarge = errors.New("message larger than MaxBatchBytes")
	// ErrInvalidJSON: in JSON mode a message must be one valid JSON value.
	ErrInvalidJSON = errors.New("message is not valid JSON")
	// ErrEmptyMessage: the protocol has no empty append.
	ErrEmptyMessage = errors.New("message is empty")
)

// maxDistinctErrors bounds how many different errors one Flush keeps.
const maxDistinctErrors = 16

// errorSet gathers the errors of failed messages for Flush: the first
// maxDistinctErrors distinct ones, and how many messages failed in all.
// The first error matching protocol.ErrOutcomeUnknown is kept past that
// bound, so that the whole matches it whenever a message may have been
// written.
type errorSet struct {
	errs    []error
	seen    map[string]struct{}
	failed  int
	unknown bool // an outcome-unknown error is kept
}

func (s *errorSet) add(err error, messages int) {
	s.failed += messages
	unknown := errors.Is(err, protocol.ErrOutcomeUnknown)
	if len(s.errs) >= maxDistinctErrors && (s.unknown || !unknown) {
		return
	}
	key := err.Error()
	if _, ok := s.seen[key]; ok {
		return
	}
	if s.seen == nil {
		s.seen = make(map[string]struct{})
	}
	s.seen[key] = struct{}{}
	s.errs = append(s.errs, err)
	s.unknown = s.unknown || unknown
}

func (s *errorSet) err() error {
	if s.failed == 0 {
		return nil
	}
	return errors.Join(append(s.errs, fmt.Errorf("%d message(s) failed", s.failed))...)
}
