package group

import (
	"net/http"
	"testing"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// aliveLogs lists the members logs alive on the server among windows
// [from, to]. A HEAD, not a read: a read counts as a use of the stream
// for its Stream-TTL.
func aliveLogs(t *testing.T, cfg Config, from, to int64) (alive []int64) {
	t.Helper()
	for w := from; w <= to; w++ {
		resp, err := http.Head(cfg.membersURL(w))
		if err != nil {
			t.Fatalf("HEAD members log %d: %v", w, err)
		}
		_ = resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			alive = append(alive, w)
		case http.StatusNotFound:
		default:
			t.Fatalf("HEAD members log %d: %d", w, resp.StatusCode)
		}
	}
	return alive
}

// logRecords reads members logs and counts their records and bytes.
func logRecords(t *testing.T, cfg Config, logs []int64) (records, bytes int) {
	t.Helper()
	for _, w := range logs {
		recs := dstest.ReadJSON(t, cfg.membersURL(w))
		records += len(recs)
		for _, r := range recs {
			bytes += len(r)
		}
	}
	return records, bytes
}

// TestMembersLogsStayBoundedOverManyWindows: three members heart-beating
// every 50 ms through eight members-log windows of 1 s (a window under a
// second is no shorter in effect: the server's clock is read from Date
// headers, to the second). Right after each rotation, the logs alive on
// the server are the new one and the one before (the rotation deletes
// the one before that), so the records alive stay at about one window's
// worth, however long the group lives; one members stream for the
// group's life would hold every heartbeat (960 records by the end).
func TestMembersLogsStayBoundedOverManyWindows(t *testing.T) {
	if testing.Short() {
		t.Skip("runs eight members-log windows of 1 s")
	}
	base := testBase(t)
	const window, beat, windows = time.Second, 50 * time.Millisecond, 8
	streams := []string{"jobs.p0", "jobs.p1", "jobs.p2"}
	members := make([]*Member, 0, 3)
	var cfg Config
	for _, id := range []string{"a", "b", "c"} {
		cfg = fast(t, base, "jobs", id, streams...)
		cfg.window, cfg.HeartbeatInterval = window, beat
		members = append(members, join(t, cfg))
	}
	for _, m := range members {
		consume(t, m, newBoard())
	}
	first := members[0].roster.current()
	// A sample of what is alive each time the first member has moved to
	// the next log, from the second rotation on.
	var maxAlive, maxRecords, records, bytes int // records: at the end
	tick := time.NewTicker(window / 20)
	defer tick.Stop()
	seen := first
	deadline := time.After(30 * time.Second)
	for seen < first+windows {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("the members log moved from window %d to %d in 30 s, not %d windows on", first, members[0].roster.current(), windows)
		}
		cur := members[0].roster.current()
		if cur == seen {
			continue
		}
		seen = cur
		if cur < first+2 {
			continue
		}
		alive := aliveLogs(t, cfg, first-2, cur+2)
		maxAlive = max(maxAlive, len(alive))
		t.Logf("window %d: logs alive %v", cur-first, alive)
		if cur >= first+windows {
			// Read once, at the end: reads would keep logs from expiring.
			records, bytes = logRecords(t, cfg, alive)
			maxRecords = records
		}
	}
	perLog := 3 * int(window/beat) // records of one window: 60
	t.Logf("over %d windows: at most %d logs alive, %d records (a window takes about %d); %d bytes per record",
		windows, maxAlive, maxRecords, perLog, bytes/max(records, 1))
	if maxAlive > 2 {
		t.Errorf("%d members logs alive after a rotation: the old ones are not deleted", maxAlive)
	}
	if maxRecords > 2*perLog {
		t.Errorf("%d records in the members logs after the last rotation: more than two windows' worth", maxRecords)
	}
}
