package partition

import (
	"errors"
	"fmt"
)

// ErrMismatch means the topic's partition count recorded on the server
// differs from the configured one. The error is a *MismatchError.
var ErrMismatch = errors.New("topic partition count mismatch")

// MismatchError names both counts.
type MismatchError struct {
	Topic      string
	Recorded   int
	Configured int
	// Reason, when set, says more than the two counts (e.g. that the
	// topic's own stream already holds messages published without
	// partitions).
	Reason string
}

func (e *MismatchError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("topic %q: %s", e.Topic, e.Reason)
	}
	if e.Configured == 0 {
		return fmt.Sprintf("topic %q has %d partitions recorded on the server: publish it with PublisherConfig.Partitions = %d (a Publisher without Partitions would write to a stream no member reads)", e.Topic, e.Recorded, e.Recorded)
	}
	return fmt.Sprintf("topic %q has %d partitions recorded on the server, configured %d; the count of a topic cannot change", e.Topic, e.Recorded, e.Configured)
}

// Is makes errors.Is(err, ErrMismatch) true.
func (e *MismatchError) Is(target error) bool { return target == ErrMismatch }
