package producer

import (
	"errors"
	"fmt"
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
type errorSet struct {
	errs   []error
	seen   map[string]struct{}
	failed int
}

func (s *errorSet) add(err error, messages int) {
	s.failed += messages
	if len(s.errs) >= maxDistinctErrors {
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
}

func (s *errorSet) err() error {
	if s.failed == 0 {
		return nil
	}
	return errors.Join(append(s.errs, fmt.Errorf("%d message(s) failed", s.failed))...)
}
