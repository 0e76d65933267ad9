// Package naming says which topics may name a stream and maps a topic to
// its stream URL. It answers with reasons, in words a user reads in an
// error; the root package wraps them in its InvalidTopicError.
package naming

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// Roots of the library's own stream trees under BaseURL, and the
// protocol's reserved segment (PROTOCOL.md §6: a server routes
// {stream-url}/__ds/... to its control APIs, so the segment is reserved
// wherever it appears).
const (
	GroupsRoot  = "__groups"
	OffsetsRoot = "__offsets"
	controlRoot = "__ds"
)

// ClaimSuffix names the stream next to an output stream that records its
// one exactly-once writer (a topic may not end in it).
const ClaimSuffix = ".eo-writer"

// StreamURL maps a topic to its stream URL: the hook's answer if there is
// a hook, else base + "/" + the topic as one escaped path segment. Without
// a hook, topics that could leave the base path (".", "..", slashes,
// backslashes) or carry control characters are refused, since servers
// and proxies may decode escapes before routing. A refusal has a reason,
// and hookErr when the hook failed.
func StreamURL(base string, hook func(string) (string, error), topic string) (u, reason string, hookErr error) {
	if topic == "" {
		return "", "empty", nil
	}
	if hook == nil {
		if reason := SegmentProblem(topic); reason != "" {
			return "", reason, nil
		}
		return strings.TrimRight(base, "/") + "/" + url.PathEscape(topic), "", nil
	}
	u, err := hook(topic)
	switch {
	case err != nil:
		return "", "TopicURL hook failed", err
	case u == "":
		return "", "TopicURL hook returned an empty URL", nil
	}
	if reason := hookTopicProblem(topic); reason != "" {
		return "", reason, nil
	}
	if reason := hookURLProblem(u); reason != "" {
		return "", "TopicURL hook returned " + protocol.RedactURL(u) + ", which " + reason, nil
	}
	return u, "", nil
}

// Reserved says why topic names one of the library's own streams or the
// protocol's control routes ("" if it does not): such a topic would read
// and write another topic's partitions, or its partition record,
// silently. Parts are compared exactly: "__groupsx" and "__ds2" are
// ordinary topics. Internal callers that address those streams on purpose
// do not ask.
func Reserved(topic string) string {
	if first, _, _ := strings.Cut(topic, "/"); first == GroupsRoot || first == OffsetsRoot {
		return fmt.Sprintf("%q is reserved for the streams of consumer groups and offset stores", first)
	}
	for part := range strings.SplitSeq(topic, "/") {
		if part == controlRoot {
			return controlReserved
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
	if "."+suffix == ClaimSuffix {
		return fmt.Sprintf("the suffix %q is reserved for the writer claims of exactly-once outputs", ClaimSuffix)
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
		case GroupsRoot, OffsetsRoot, controlRoot:
			return fmt.Sprintf("has the reserved segment %q", seg)
		}
	}
	return ""
}

// controlReserved is the reason a segment "__ds" is refused.
var controlReserved = fmt.Sprintf("%q is reserved by the protocol for its control routes", controlRoot)

// SegmentProblem says why name cannot be one path segment under a base
// URL ("" if it can). The protocol's reserved segment "__ds" cannot be
// one anywhere: a server routes it to its control APIs.
func SegmentProblem(name string) string {
	switch name {
	case ".", "..":
		return "a dot segment would leave the base path"
	case controlRoot:
		return controlReserved
	}
	if strings.ContainsAny(name, `/\`) {
		return "contains a slash or backslash"
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return "contains a control character"
		}
	}
	return ""
}
