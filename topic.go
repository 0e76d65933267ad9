package durablestreams

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrInvalidTopic is returned for a topic that cannot name a stream under
// the base URL.
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
		return u, nil
	}
	if reason := topicProblem(topic); reason != "" {
		return "", &InvalidTopicError{Topic: topic, Reason: reason}
	}
	return strings.TrimRight(base, "/") + "/" + url.PathEscape(topic), nil
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
