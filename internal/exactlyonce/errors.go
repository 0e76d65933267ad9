package exactlyonce

import "errors"

// Sentinels of exactly-once writes; the root package re-exports them
// with their documentation. Their text keeps the root package's prefix
// they were born with, so that the messages users see did not change
// when they moved here.
var (
	// ErrNotExactlyOnce: an output cannot be written exactly once.
	ErrNotExactlyOnce = errors.New("durablestreams: output cannot be written exactly once")
	// ErrSecondWriter: another exactly-once writer claimed the output
	// stream first.
	ErrSecondWriter = errors.New("durablestreams: output stream already has another exactly-once writer")
)
