package durablestreams

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/durablestreams/watermill-durablestreams/internal/exactlyonce"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

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

// topicURL maps a topic to its stream URL: the hook's answer if there is a
// hook, else base + "/" + the topic as one escaped path segment. Without a
// hook, topics that could leave the base path (".", "..", slashes,
// backslashes) or carry control characters are rejected, since servers
// and proxies may decode escapes before routing.
func topicURL(base string, hook func(string) (string, error), topic string) (string, error) {
	if topic == "" {
		return "", &InvalidTopicError{Topic: topic, Reason: "empty"}
	}
	if hook != nil {
		u, err := hook(topic)
		if err != nil {
			return "", &InvalidTopicError{Topic: topic, Reason: "TopicURL hook failed", Err: err}
		}
		if u == "" {
			return "", &InvalidTopicError{Topic: topic, Reason: "TopicURL hook returned an empty URL"}
		}
		if reason := hookTopicProblem(topic); reason != "" {
			return "", &InvalidTopicError{Topic: topic, Reason: reason}
		}
		if reason := hookURLProblem(u); reason != "" {
			return "", &InvalidTopicError{Topic: topic, Reason: "TopicURL hook returned " + protocol.RedactURL(u) + ", which " + reason}
		}
		return u, nil
	}
	if reason := topicProblem(topic); reason != "" {
		return "", &InvalidTopicError{Topic: topic, Reason: reason}
	}
	return strings.TrimRight(base, "/") + "/" + url.PathEscape(topic), nil
}

// checkTopic rejects a topic a caller gave that names one of the
// library's own streams (see ErrInvalidTopic): such a topic would read and
// write another topic's partitions, or its partition record, silently.
// Internal callers that address those streams on purpose skip it.
func checkTopic(topic string) error {
	if reason := reservedProblem(topic); reason != "" {
		return &InvalidTopicError{Topic: topic, Reason: reason}
	}
	return nil
}

// Roots of the library's own stream trees under BaseURL, and the
// protocol's reserved segment (PROTOCOL.md §6: a server routes
// {stream-url}/__ds/... to its control APIs, so the segment is reserved
// wherever it appears).
const (
	groupsRoot  = "__groups"
	offsetsRoot = "__offsets"
	controlRoot = "__ds"
)

// reservedProblem says why topic names one of the library's own streams
// or the protocol's control routes ("" if it does not). Parts are
// compared exactly: "__groupsx" and "__ds2" are ordinary topics.
func reservedProblem(topic string) string {
	if first, _, _ := strings.Cut(topic, "/"); first == groupsRoot || first == offsetsRoot {
		return fmt.Sprintf("%q is reserved for the streams of consumer groups and offset stores", first)
	}
	for part := range strings.SplitSeq(topic, "/") {
		if part == controlRoot {
			return fmt.Sprintf("%q is reserved by the protocol for its control routes", controlRoot)
		}
	}
	i := strings.LastIndexByte(topic, '.')
	if i < 0 {
		return ""
	}
	suffix := topic[i+1:]
	if suffix == "partitions" || isPartitionSuffix(suffix) {
		return fmt.Sprintf("the suffix %q is reserved for partitioned topics", "."+suffix)
	}
	if "."+suffix == exactlyonce.ClaimSuffix {
		return fmt.Sprintf("the suffix %q is reserved for the writer claims of exactly-once outputs", exactlyonce.ClaimSuffix)
	}
	return ""
}

// isPartitionSuffix: "p" and one or more digits.
func isPartitionSuffix(s string) bool {
	if len(s) < 2 || s[0] != 'p' {
		return false
	}
	for _, r := range s[1:] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// hookTopicProblem: a topic a TopicURL hook maps may be nested, but no
// part of it may be a dot segment, which a hook that joins the parts
// would turn into a path leaving the topic's place ("t/../__groups/...").
func hookTopicProblem(topic string) string {
	for part := range strings.SplitSeq(topic, "/") {
		if part == "." || part == ".." {
			return "a dot segment would leave the base path"
		}
	}
	return ""
}

// hookURLProblem says why a URL a TopicURL hook returned cannot be a
// topic's stream ("" if it can): a reader appends its own query, and a
// dot segment or a reserved segment would write into another stream's
// place (a group's members stream, the protocol's control routes).
func hookURLProblem(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "is not a URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "is not an http or https URL"
	case u.Host == "":
		return "has no host"
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		return "has a query or fragment (the reader adds its own query)"
	}
	for seg := range strings.SplitSeq(u.Path, "/") {
		switch seg {
		case ".", "..":
			return "has a dot segment"
		case groupsRoot, offsetsRoot, controlRoot:
			return fmt.Sprintf("has the reserved segment %q", seg)
		}
	}
	return ""
}

func topicProblem(topic string) string {
	if topic == "." || topic == ".." {
		return "a dot segment would leave the base path"
	}
	if strings.ContainsAny(topic, `/\`) {
		return "contains a slash or backslash"
	}
	for _, r := range topic {
		if r < 0x20 || r == 0x7f {
			return "contains a control character"
		}
	}
	return ""
}
