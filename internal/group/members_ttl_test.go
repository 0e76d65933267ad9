package group

import (
	"net/http"
	"testing"
	"time"
)

// TestMembersLogOfASubSecondWindowIsCreated: a window under a third of a
// second makes a Stream-TTL under a second, which is sent rounded up (1),
// never as 0: the reference server refuses 0 (500, so no member could
// join), and the Caddy server takes it as a log expired at once.
func TestMembersLogOfASubSecondWindowIsCreated(t *testing.T) {
	if got := ttlSeconds(450 * time.Millisecond); got != 1 {
		t.Errorf("Stream-TTL of 450ms: %d, want 1", got)
	}
	if got := ttlSeconds(30 * time.Minute); got != 1800 {
		t.Errorf("Stream-TTL of 30m: %d, want 1800", got)
	}
	cfg := fast(t, testBase(t), "jobs", "a", "jobs")
	cfg.window = 150 * time.Millisecond
	m := join(t, cfg)
	resp, err := http.Head(cfg.membersURL(m.roster.current()))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD of the members log the member joined: %d", resp.StatusCode)
	}
}
