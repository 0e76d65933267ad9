package durablestreams

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/naming"
	"github.com/durablestreams/watermill-durablestreams/internal/producer"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// Errors returned by the Publisher and Subscriber. Test for them with
// errors.Is; StaleEpochError and HTTPError also with errors.As.
var (
	// ErrPublisherClosed is returned by Publish, CloseStream and Flush after Close.
	ErrPublisherClosed = errors.New("durablestreams: publisher is closed")
	// ErrNilMessage is returned by Publish for a nil *message.Message;
	// nothing of the call was written. The library's marshalers return it
	// too, in a *MarshalError, from Marshal of a nil message.
	ErrNilMessage = errors.New("durablestreams: message is nil")
	// ErrNotPublished means a message of a synchronous Publish was not
	// appended because an earlier message of the same call (and, with
	// Partitions, partition) failed to append; it was not written.
	ErrNotPublished = protocol.ErrNotPublished
	// ErrSubscriberClosed is returned by Subscribe after Close.
	ErrSubscriberClosed = errors.New("durablestreams: subscriber is closed")

	// ErrStreamClosed means the stream was closed for good (EOF); appends fail.
	ErrStreamClosed = protocol.ErrStreamClosed
	// ErrStreamNotFound means the stream does not exist (404).
	ErrStreamNotFound = protocol.ErrStreamNotFound
	// ErrStreamGone means the stream, or the offset asked for, is no longer kept (410).
	ErrStreamGone = protocol.ErrStreamGone
	// ErrStaleEpoch means a producer with the same id and a newer epoch
	// fenced this one. The error is a *StaleEpochError.
	ErrStaleEpoch = protocol.ErrStaleEpoch
	// ErrContentTypeMismatch means the stream exists with another content type.
	ErrContentTypeMismatch = protocol.ErrContentTypeMismatch
	// ErrStreamConflict means the stream exists with another TTL, expiry
	// or closed state, or, where a topic's partition record belongs
	// ("<topic>.partitions"), a stream that holds something else.
	ErrStreamConflict = protocol.ErrStreamConflict
	// ErrRetriesExhausted means a retryable failure outlasted the
	// RetryPolicy and no try reached the server: nothing was written.
	ErrRetriesExhausted = protocol.ErrRetriesExhausted
	// ErrServerUnreachable means no try of a request reached the server
	// (connection refused, unknown host, unreachable network, connect
	// timeout) for RetryPolicy.MaxUnreachable (default 10s), or when the
	// retries or the caller's context ended. Nothing was written, unless
	// the error also matches ErrOutcomeUnknown (an earlier try reached the
	// server before it went away): that is what counts. It also matches
	// ErrRetriesExhausted when the policy ended the retries.
	ErrServerUnreachable = protocol.ErrServerUnreachable
	// ErrNotStreamEndpoint means the server answered, but not as a Durable
	// Streams endpoint does: a create answered 404, or a create or append
	// answered success without Stream-Next-Offset (a web server, a proxy's
	// default route, a path beside the stream root). Nothing was written
	// to a stream; check BaseURL (the reference servers keep streams
	// under /v1/stream).
	ErrNotStreamEndpoint = protocol.ErrNotStreamEndpoint
	// ErrOutcomeUnknown means a request ended without an answer after it
	// may have reached the server, and retrying within the RetryPolicy did not
	// settle it. The message may or may not have been written; publishing
	// it again may write it twice.
	ErrOutcomeUnknown = protocol.ErrOutcomeUnknown

	// ErrMessageTooLarge means a message does not fit in MaxBatchBytes even
	// alone; it is rejected before anything is buffered.
	ErrMessageTooLarge = producer.ErrMessageTooLarge
	// ErrInvalidJSON means a message for a JSON-mode stream is not one valid
	// JSON value (a custom Marshaler's output).
	ErrInvalidJSON = producer.ErrInvalidJSON
	// ErrEmptyMessage means a marshaler produced an empty message, which
	// the protocol cannot append.
	ErrEmptyMessage = producer.ErrEmptyMessage
)

// StaleEpochError is the answer a fenced producer gets (HTTP 403): another
// producer with the same id claimed a newer epoch. errors.Is(err,
// ErrStaleEpoch) is true for it.
type StaleEpochError struct {
	// ServerEpoch is the epoch the server knows for the producer id.
	ServerEpoch int64
	// Epoch is the epoch this producer sent.
	Epoch int64
}

func (e *StaleEpochError) Error() string {
	return fmt.Sprintf("producer epoch %d is stale, server has epoch %d (fenced by a newer producer with the same id)", e.Epoch, e.ServerEpoch)
}

// Is makes errors.Is(err, ErrStaleEpoch) true.
func (e *StaleEpochError) Is(target error) bool { return target == ErrStaleEpoch }

// HTTPError is a server answer with no more specific meaning. It carries
// the start of the body for diagnosis, never request headers. A 404
// matches ErrStreamNotFound and a 410 ErrStreamGone with errors.Is.
type HTTPError struct {
	// Method and URL of the request; the URL has no user info or query.
	Method string
	URL    string
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Body is the start of the answer's body, on one line.
	Body string
	// RetryAfter is the server's Retry-After, if it sent one.
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Is makes errors.Is match ErrStreamNotFound (404) and ErrStreamGone (410).
func (e *HTTPError) Is(target error) bool {
	switch target {
	case ErrStreamNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrStreamGone:
		return e.StatusCode == http.StatusGone
	}
	return false
}

// Temporary reports whether the request may be sent again as it is (429
// and 5xx).
func (e *HTTPError) Temporary() bool { return protocol.RetryableStatus(e.StatusCode) }

// newHTTPError and newStaleEpochError are the protocol.Client's
// constructors of the errors users get (see ClientConfig.newClient): the
// internal packages cannot import this one, and these types are defined
// only here.
func newHTTPError(method, url string, status int, body string, retryAfter time.Duration) error {
	return &HTTPError{Method: method, URL: url, StatusCode: status, Body: body, RetryAfter: retryAfter}
}

func newStaleEpochError(serverEpoch, epoch int64) error {
	return &StaleEpochError{ServerEpoch: serverEpoch, Epoch: epoch}
}

// rootHint adds to an ErrNotStreamEndpoint error where streams were
// expected, when BaseURL is not under the stream root. It stays here, not
// beside RootCheck, because it words the error as the package does (wrap).
func rootHint(c *protocol.RootCheck, err error) error {
	if !errors.Is(err, ErrNotStreamEndpoint) {
		return err
	}
	if expected, ok := protocol.ExpectedRoot(c.Base); !ok {
		return wrap(err, "BaseURL %s is not under %s; streams were expected under %s", protocol.RedactURL(c.Base), protocol.StreamRoot, expected)
	}
	return err
}

// errorf wraps err where an error leaves the package, with the package's
// prefix said once: an error that already starts with it (a sentinel of
// this package, or one from a public method called inside another) loses
// its own. errors.Is and errors.As see err as it is.
func errorf(err error, format string, args ...any) error {
	return fmt.Errorf("durablestreams: "+format+": %w", append(args, unprefixed{err})...)
}

// wrap is errorf inside the package: it adds context, not the prefix.
func wrap(err error, format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, unprefixed{err})...)
}

// unprefixed is err without the package prefix in its message.
type unprefixed struct{ err error }

func (u unprefixed) Error() string { return strings.TrimPrefix(u.err.Error(), "durablestreams: ") }
func (u unprefixed) Unwrap() error { return u.err }

// ErrInvalidTopic is returned for a topic that cannot name a stream under
// the base URL, or that names one of the library's own streams: a topic
// whose last dot-separated part is "partitions" or "p<digits>" (reserved
// for partitioned topics: "<topic>.partitions" records the partition count
// and "<topic>.p<i>" is partition i) or ".eo-writer" (the writer claim of
// an exactly-once output stream, see ExactlyOnce), whose first
// slash-separated part is
// exactly "__groups" or "__offsets" (a consumer group's coordination
// streams and the StreamOffsetStore's positions; "__groupsx" is an
// ordinary topic), or one of whose slash-separated parts is exactly "__ds"
// (the protocol reserves that segment for its control routes, PROTOCOL.md
// §6). A topic mapped by a TopicURL hook may not have a part that is a dot
// segment ("." or ".."), and the URL the hook returns must be
// an http(s) URL without query or fragment none of whose path segments is
// ".", "..", "__ds", "__groups" or "__offsets". Publisher and Subscriber
// reject them alike, with or without a TopicURL hook. A sharing
// ConsumerGroup also rejects a nested topic (one a TopicURL hook maps,
// such as "tenant-a/orders") with a part between slashes that is empty, a
// dot segment, "members" or "streams": its own streams could not be told
// apart from another topic's.
// The error is an *InvalidTopicError.
var ErrInvalidTopic = errors.New("durablestreams: invalid topic")

// InvalidTopicError says which topic was rejected and why.
type InvalidTopicError struct {
	Topic  string // as given to Publish or Subscribe
	Reason string // why it cannot name a stream
	// Err is the TopicURL hook's error, if it failed.
	Err error
}

func (e *InvalidTopicError) Error() string {
	msg := fmt.Sprintf("durablestreams: invalid topic %q: %s", e.Topic, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is makes errors.Is(err, ErrInvalidTopic) true.
func (e *InvalidTopicError) Is(target error) bool { return target == ErrInvalidTopic }

func (e *InvalidTopicError) Unwrap() error { return e.Err }

// topicURL maps a topic to its stream URL (see naming.StreamURL); a
// topic that cannot name one is an *InvalidTopicError.
func topicURL(base string, hook func(string) (string, error), topic string) (string, error) {
	u, reason, err := naming.StreamURL(base, hook, topic)
	if reason != "" {
		return "", &InvalidTopicError{Topic: topic, Reason: reason, Err: err}
	}
	return u, nil
}

// checkTopic refuses a topic a caller gave that names one of the
// library's own streams (see ErrInvalidTopic and naming.Reserved).
func checkTopic(topic string) error {
	if reason := naming.Reserved(topic); reason != "" {
		return &InvalidTopicError{Topic: topic, Reason: reason}
	}
	return nil
}
