package group

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/google/uuid"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

// Defaults for Config, from BenchmarkCoordinationLatency on the shared
// 2-core machine (load average 5 to 7, other engineers' test runs): a
// heartbeat append took 0.6 ms at the median, 14 ms at p99 and 23 ms at
// worst; a long-polling member saw it 0.2 ms (median), 3 ms (p99), 7 ms
// (worst) after the append returned. Heartbeats every second thus cost
// nothing and leave room for several slow or failed ones (a GC pause, a
// server restart) within a 10 s session, which is what bounds the
// replacement of a dead member: SessionTimeout plus at most one poll of
// the coordinator (a quarter HeartbeatInterval), about 10.3 s, under the
// issue's bound of about 15 s. A clean Leave hands over in milliseconds,
// whatever these are.
const (
	DefaultSessionTimeout    = 10 * time.Second
	DefaultHeartbeatInterval = time.Second
)

// ErrInvalidConfig is returned for a Config that cannot work; the message
// names the field. It is the library's one configuration sentinel.
var ErrInvalidConfig = protocol.ErrInvalidConfig

// Config configures a Member.
type Config struct {
	// Client sends every request.
	Client *protocol.Client
	// BaseURL is where the coordination streams live: under
	// BaseURL/__groups/<group>/<topic>/.
	BaseURL string
	// Group is the consumer group.
	Group string
	// Topic is the topic the group consumes. It may be nested
	// ("tenant-a/orders", for a TopicURL hook), as long as no part
	// between slashes is empty, a dot segment, "members" or "streams"
	// (see TopicProblem).
	Topic string
	// Streams are the names of the topic's streams (partitions) that the
	// group's members share. Every member must be given the same set.
	Streams []string
	// MemberID names this member; it must be unique among the live members
	// of the group. Default: a random UUID. A member that restarts with the
	// same ID takes its streams back at once (it fences its earlier self).
	// Of two live members with one ID, the one that joined last wins: the
	// other stops (Member.Done, ErrSuperseded).
	MemberID string
	// SessionTimeout is how long a member that stopped heart-beating is
	// still taken as alive. Default: DefaultSessionTimeout.
	SessionTimeout time.Duration
	// HeartbeatInterval is how often a member says it is alive. It must be
	// well below SessionTimeout (at most a third of it). Default:
	// DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// Margin is how much sooner than the others a member gives its own
	// leases up after its last heartbeat: it covers the time between a
	// Valid check and the delivery it allows. Default: two
	// HeartbeatIntervals, but at most half of what SessionTimeout leaves
	// after one HeartbeatInterval, so that every HeartbeatInterval of at
	// most a third of SessionTimeout works (3s/1s: a margin of 1s, and a
	// heartbeat has 1s to be accepted before the leases lapse).
	Margin time.Duration
	// RetryPolicy bounds retries of reads and fenced writes.
	RetryPolicy retry.Policy
	// Logger; nil is watermill.NopLogger.
	Logger watermill.LoggerAdapter

	// rotateEvery: positions per log (tests set it low).
	rotateEvery int
	// hintEvery: log rotations per root record that names the current
	// log (tests set it low).
	hintEvery int
	// window: how long one members log is written (tests set it low).
	window time.Duration
}

func (c *Config) setDefaults() {
	if c.MemberID == "" {
		c.MemberID = uuid.NewString()
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.Margin == 0 {
		c.Margin = defaultMargin(c.SessionTimeout, c.HeartbeatInterval)
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
	if c.rotateEvery <= 0 {
		c.rotateEvery = defaultRotateEvery
	}
	if c.hintEvery <= 0 {
		c.hintEvery = defaultHintEvery
	}
	if c.window <= 0 {
		c.window = defaultWindow
	}
	if c.Client == nil {
		c.Client = &protocol.Client{}
	}
	if c.RetryPolicy == (retry.Policy{}) {
		c.RetryPolicy = retry.DefaultPolicy()
	}
}

// defaultMargin is two heartbeat intervals, capped at half of what the
// session leaves after one interval. Any positive margin keeps a former
// owner's deadline before the others' (see doc.go); the cap keeps room
// for a slow heartbeat when the interval is a third of the session.
func defaultMargin(session, heartbeat time.Duration) time.Duration {
	m := 2 * heartbeat
	if session > heartbeat {
		m = min(m, (session-heartbeat)/2)
	}
	return m
}

// CheckWithDefaults is Validate after the defaults Join fills in: what
// Join would reject.
func (c Config) CheckWithDefaults() error {
	c.setDefaults()
	return c.Validate()
}

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	if _, err := url.ParseRequestURI(c.BaseURL); err != nil || c.BaseURL == "" {
		return fmt.Errorf("%w: BaseURL %q is not an absolute URL", ErrInvalidConfig, c.BaseURL)
	}
	for _, n := range [][2]string{{"Group", c.Group}, {"MemberID", c.MemberID}} {
		if reason := NameProblem(n[1]); reason != "" {
			return fmt.Errorf("%w: %s %.80q %s", ErrInvalidConfig, n[0], n[1], reason)
		}
		if len(n[1]) > MaxNameBytes {
			return fmt.Errorf("%w: %s %.80q… is %d bytes long, at most %d fit in the group's URLs and records", ErrInvalidConfig, n[0], n[1], len(n[1]), MaxNameBytes)
		}
	}
	if reason := TopicProblem(c.Topic); reason != "" {
		return fmt.Errorf("%w: Topic %q %s", ErrInvalidConfig, c.Topic, reason)
	}
	if len(c.Streams) == 0 {
		return fmt.Errorf("%w: no Streams", ErrInvalidConfig)
	}
	if n := len(c.longestURL()); n > MaxURLBytes {
		return fmt.Errorf("%w: the URLs of group %.80q on topic %.80q would be %d bytes long, more than the %d servers and proxies take: shorten BaseURL, the group name or the topic", ErrInvalidConfig, c.Group, c.Topic, n, MaxURLBytes)
	}
	seen := make(map[string]bool, len(c.Streams))
	for _, s := range c.Streams {
		if reason := TopicProblem(s); reason != "" {
			return fmt.Errorf("%w: stream %q %s", ErrInvalidConfig, s, reason)
		}
		if seen[s] {
			return fmt.Errorf("%w: stream %q listed twice", ErrInvalidConfig, s)
		}
		seen[s] = true
	}
	if c.SessionTimeout < 0 || c.HeartbeatInterval < 0 || c.Margin < 0 {
		return fmt.Errorf("%w: SessionTimeout, HeartbeatInterval and Margin must not be negative", ErrInvalidConfig)
	}
	if c.HeartbeatInterval > 0 && c.SessionTimeout > 0 && 3*c.HeartbeatInterval > c.SessionTimeout {
		return fmt.Errorf("%w: HeartbeatInterval %v must be at most a third of SessionTimeout %v", ErrInvalidConfig, c.HeartbeatInterval, c.SessionTimeout)
	}
	if c.Margin > 0 && c.SessionTimeout > 0 && c.Margin+c.HeartbeatInterval >= c.SessionTimeout {
		return fmt.Errorf("%w: Margin %v plus HeartbeatInterval leaves no session within SessionTimeout %v", ErrInvalidConfig, c.Margin, c.SessionTimeout)
	}
	return nil
}

// TopicProblem says why a topic (or one of its streams) cannot name a
// group's folder ("" if it can). One path segment can; so can a nested
// topic of several segments ("tenant-a/orders", which only a TopicURL
// hook can map), escaped into one segment of the group's URLs ("%2F").
// A server or proxy that decodes "%2F" before routing sees the segments
// instead, so a nested topic's segments must be names themselves and none
// may be "members" or "streams", the names the group uses inside a
// topic's folder (groupURL): then the folder of every topic ends where
// the first of those names follows it, and no two topics' streams can be
// the same, decoded or not.
func TopicProblem(topic string) string {
	if !strings.Contains(topic, "/") {
		return NameProblem(topic)
	}
	for _, seg := range strings.Split(topic, "/") {
		if reason := NameProblem(seg); reason != "" {
			return fmt.Sprintf("has a part %q that %s", seg, reason)
		}
		if seg == "members" || seg == "streams" {
			return fmt.Sprintf("has a part %q, which a nested topic cannot have: the group's own streams use that name", seg)
		}
	}
	return ""
}

// NameProblem says why a name cannot be one path segment ("" if it can).
func NameProblem(name string) string {
	switch {
	case name == "":
		return "is empty"
	case name == "." || name == "..":
		return "is a dot segment"
	case strings.ContainsAny(name, `/\`):
		return "contains a slash or backslash"
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return "contains a control character"
		}
	}
	return ""
}

// groupURL is the folder of one group's coordination streams for one topic.
func (c Config) groupURL() string {
	return strings.TrimRight(c.BaseURL, "/") + "/__groups/" + url.PathEscape(c.Group) + "/" + url.PathEscape(c.Topic)
}

func (c Config) ownerURL(stream string) string {
	return c.groupURL() + "/streams/" + url.PathEscape(stream)
}

// logURL is position log n of an ownership epoch.
func (c Config) logURL(stream string, epoch, n int64) string {
	return c.ownerURL(stream) + "/" + strconv.FormatInt(epoch, 10) + "." + strconv.FormatInt(n, 10)
}

// membersURL is the members log of window w (see roster).
func (c Config) membersURL(w int64) string {
	return c.groupURL() + "/members/" + strconv.FormatInt(w, 10)
}

// longestURL is the longest URL the group writes to: a position log of
// its longest stream name at the largest epoch.
func (c Config) longestURL() string {
	longest := ""
	for _, s := range c.Streams {
		if len(s) > len(longest) {
			longest = s
		}
	}
	return c.logURL(longest, protocol.MaxInteger, protocol.MaxInteger)
}

// Bounds on names, so that every URL and record of a group stays well
// within what servers and proxies accept (Node's default header limit
// is 16 KiB, many proxies take 8 KiB).
const (
	MaxNameBytes = 200
	MaxURLBytes  = 4000
)

// defaultRotateEvery is how many positions a log takes before its owner
// starts the next: a claim reads at most about this many records of it.
const defaultRotateEvery = 1000

// defaultHintEvery is how many log rotations the owner makes before it
// names the current log in the ownership root (and deletes the logs
// before it): the root takes one record per 64,000 positions, and a
// claim finds the last log from there with a few HEAD requests.
const defaultHintEvery = 64

// defaultWindow is how long one members log is written before the next
// is started (by the server's clock): a log holds at most about this many
// HeartbeatIntervals of records per member.
const defaultWindow = 10 * time.Minute
