package group

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestDefaultMarginLetsAThirdWork: the documented rule (HeartbeatInterval
// at most a third of SessionTimeout) is the enforced one: the default
// Margin leaves every such pair a session, and keeps two intervals where
// the session has room for them. Before, 3s/1s failed with "Margin 2s plus
// HeartbeatInterval leaves no session".
func TestDefaultMarginLetsAThirdWork(t *testing.T) {
	for _, c := range []struct {
		session, heartbeat, margin time.Duration
		valid                      bool
	}{
		{10 * time.Second, time.Second, 2 * time.Second, true},
		{5 * time.Second, time.Second, 2 * time.Second, true},
		{4 * time.Second, time.Second, 1500 * time.Millisecond, true},
		{3 * time.Second, time.Second, time.Second, true},
		{2 * time.Second, 200 * time.Millisecond, 400 * time.Millisecond, true},
		{2999 * time.Millisecond, time.Second, 999500 * time.Microsecond, false},
	} {
		cfg := Config{BaseURL: "http://x/", Group: "g", Topic: "t", Streams: []string{"t"}, MemberID: "m",
			SessionTimeout: c.session, HeartbeatInterval: c.heartbeat}
		cfg.setDefaults()
		if cfg.Margin != c.margin {
			t.Errorf("%v/%v: default Margin %v, want %v", c.session, c.heartbeat, cfg.Margin, c.margin)
		}
		err := cfg.Validate()
		if c.valid && err != nil {
			t.Errorf("%v/%v: %v", c.session, c.heartbeat, err)
		}
		if !c.valid && !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%v/%v: Validate() = %v, want ErrInvalidConfig", c.session, c.heartbeat, err)
		}
		if c.valid && c.session-cfg.Margin <= c.heartbeat {
			t.Errorf("%v/%v: a heartbeat on time does not keep the leases (margin %v)", c.session, c.heartbeat, cfg.Margin)
		}
	}
}

// TestCheckWithDefaults: a Config that leaves SessionTimeout or
// HeartbeatInterval to the defaults is checked against them.
func TestCheckWithDefaults(t *testing.T) {
	for name, c := range map[string]struct {
		session, heartbeat time.Duration
		valid              bool
	}{
		"defaults":                {0, 0, true},
		"heartbeat 5s alone":      {0, 5 * time.Second, false},
		"session 2s alone":        {2 * time.Second, 0, false},
		"session 3s alone":        {3 * time.Second, 0, true},
		"heartbeat a third alone": {0, DefaultSessionTimeout / 3, true},
	} {
		cfg := Config{BaseURL: "http://x/", Group: "g", Topic: "t", Streams: []string{"t"},
			SessionTimeout: c.session, HeartbeatInterval: c.heartbeat}
		err := cfg.CheckWithDefaults()
		if c.valid != (err == nil) {
			t.Errorf("%s: CheckWithDefaults() = %v, want valid %v", name, err, c.valid)
		}
	}
}

// TestMemberWithHeartbeatAThirdOfTheSessionHoldsItsStream: such a member
// joins, gets its stream and its lease is valid.
func TestMemberWithHeartbeatAThirdOfTheSessionHoldsItsStream(t *testing.T) {
	cfg := fast(t, testBase(t), "t", "a", "t")
	cfg.SessionTimeout, cfg.HeartbeatInterval, cfg.Margin = 3*time.Second, time.Second, 0
	m := join(t, cfg)
	select {
	case l := <-m.Assignments():
		if !l.Valid() {
			t.Fatal("the lease is not valid right after the claim")
		}
		if err := l.Release(t.Context(), nil); err != nil {
			t.Fatalf("release: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no stream assigned within 10s")
	}
}

// TestTopicProblem: a nested topic is a group's topic when each part is a
// name and none is one the group's own streams use.
func TestTopicProblem(t *testing.T) {
	for _, c := range []struct {
		topic, problem string // problem "" if valid
	}{
		{"t", ""},
		{"members", ""}, // one segment: escaped, cannot reach into another folder
		{"tenant-a/orders", ""},
		{"tenant-a/orders.p1", ""},
		{"a/b/c", ""},
		{"", "is empty"},
		{"..", "dot segment"},
		{`a\b`, "backslash"},
		{"a/members", `part "members"`},
		{"streams/a", `part "streams"`},
		{"a//b", `part "" that is empty`},
		{"a/", `part "" that is empty`},
		{"/a", `part "" that is empty`},
		{"a/../b", `part ".." that is a dot segment`},
		{`a/b\c`, "backslash"},
		{"a/b\x00", "control character"},
	} {
		got := TopicProblem(c.topic)
		if (c.problem == "") != (got == "") || !strings.Contains(got, c.problem) {
			t.Errorf("TopicProblem(%q) = %q, want %q", c.topic, got, c.problem)
		}
	}
	cfg := Config{BaseURL: "http://x/", Group: "g", Topic: "tenant-a/orders",
		Streams: []string{"tenant-a/orders.p0", "tenant-a/orders.p1"}, MemberID: "m"}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		t.Errorf("nested topic: %v", err)
	}
	cfg.Streams = []string{"tenant-a/members"}
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("stream with a part the group uses: Validate() = %v", err)
	}
}
