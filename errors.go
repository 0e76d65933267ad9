package durablestreams

import (
	"errors"

	"github.com/durablestreams/watermill-durablestreams/internal/producer"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// Errors returned by the Publisher and Subscriber. Test for them with
// errors.Is; StaleEpochError and HTTPError also with errors.As.
var (
	// ErrPublisherClosed: Publish or CloseStream after Close.
	ErrPublisherClosed = errors.New("durablestreams: publisher is closed")
	// ErrNilMessage: Publish got a nil *message.Message; nothing of the
	// call was written.
	ErrNilMessage = errors.New("durablestreams: message is nil")
	// ErrNotPublished: a message of a synchronous Publish was not appended
	// because an earlier message of the same call failed to append; it was
	// not written.
	ErrNotPublished = errors.New("durablestreams: message not published")
	// ErrSubscriberClosed: Subscribe after Close.
	ErrSubscriberClosed = errors.New("durablestreams: subscriber is closed")

	// ErrStreamClosed: the stream was closed for good (EOF); appends fail.
	ErrStreamClosed = protocol.ErrStreamClosed
	// ErrStreamNotFound: the stream does not exist (404).
	ErrStreamNotFound = protocol.ErrStreamNotFound
	// ErrStreamGone: the stream, or the offset asked for, is no longer kept (410).
	ErrStreamGone = protocol.ErrStreamGone
	// ErrStaleEpoch: a producer with the same id and a newer epoch fenced
	// this one. The error is a *StaleEpochError.
	ErrStaleEpoch = protocol.ErrStaleEpoch
	// ErrContentTypeMismatch: the stream exists with another content type.
	ErrContentTypeMismatch = protocol.ErrContentTypeMismatch
	// ErrStreamConflict: the stream exists with another TTL, expiry or
	// closed state.
	ErrStreamConflict = protocol.ErrStreamConflict
	// ErrRetriesExhausted: a retryable failure outlasted the RetryPolicy
	// and no try reached the server: nothing was written.
	ErrRetriesExhausted = protocol.ErrRetriesExhausted
	// ErrOutcomeUnknown: a request ended without an answer after it may
	// have reached the server, and retrying within the RetryPolicy did not
	// settle it. The message may or may not have been written; publishing
	// it again may write it twice.
	ErrOutcomeUnknown = protocol.ErrOutcomeUnknown

	// ErrMessageTooLarge: a message does not fit in MaxBatchBytes even
	// alone; it is rejected before anything is buffered.
	ErrMessageTooLarge = producer.ErrMessageTooLarge
	// ErrInvalidJSON: a message for a JSON-mode stream is not one valid
	// JSON value (a custom Marshaler's output).
	ErrInvalidJSON = producer.ErrInvalidJSON
	// ErrEmptyMessage: the protocol has no empty append; a byte-mode
	// marshaler must not produce an empty frame.
	ErrEmptyMessage = producer.ErrEmptyMessage
)

// StaleEpochError is returned when another producer with the same id
// claimed a newer epoch (zombie fencing).
type StaleEpochError = protocol.StaleEpochError

// HTTPError is a server answer with no more specific meaning.
type HTTPError = protocol.HTTPError

// RetryPolicy bounds retries of network errors, timeouts, 429 and 5xx.
type RetryPolicy = protocol.RetryPolicy
