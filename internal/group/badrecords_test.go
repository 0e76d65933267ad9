package group

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// TestBadOwnershipRecordsAreLoggedAndSkipped: records that do not parse,
// and records whose values are out of range (an epoch at the integer
// maximum, a negative one), POSTed into a stream's ownership root by
// someone else, are logged at Error and skipped: a member still claims the
// stream at once, and a second member takes it over after the first
// leaves.
func TestBadOwnershipRecordsAreLoggedAndSkipped(t *testing.T) {
	base := testBase(t)
	cfg := fast(t, base, "t", "a", "t")
	root := cfg.ownerURL("t")
	put(t, http.MethodPut, root, "")
	put(t, http.MethodPost, root, `["not a record", 7, {"owner":"x","claim":"c","inc":"i","epoch":9223372036854775807}, {"owner":"y","claim":"c","inc":"i","epoch":-3}]`)

	logs := watermill.NewCaptureLogger()
	cfg.Logger = logs
	a := join(t, cfg)
	select {
	case l := <-a.Assignments():
		if err := l.Release(context.Background(), nil); err != nil {
			t.Fatalf("release: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("bad records stalled the stream: a got no lease")
	}
	leave(t, a)
	errorsLogged := 0
	for _, e := range logs.Captured()[watermill.ErrorLogLevel] {
		if strings.Contains(e.Msg, "Skipping a record") {
			errorsLogged++
		}
	}
	if errorsLogged < 4 {
		t.Fatalf("%d bad records logged at Error, want each of the 4", errorsLogged)
	}

	b := join(t, fast(t, base, "t", "b", "t"))
	select {
	case <-b.Assignments():
	case <-time.After(5 * time.Second):
		t.Fatal("after bad records and a handover, b got no lease")
	}
}

func put(t *testing.T, method, url, body string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %s", method, url, resp.Status)
	}
}

// TestBadMembersRecordsAreLoggedAndSkipped: records POSTed into the
// members log by someone else, one that does not parse, one with an
// overlong member ID, and a "next" naming a window far in the server's
// future, are logged at Error and skipped. The members stay on the log of
// the server's clock: a third member that joins is seen by the two there
// and gets its share by a handover, and nobody is declared dead.
func TestBadMembersRecordsAreLoggedAndSkipped(t *testing.T) {
	base := testBase(t)
	logs := watermill.NewCaptureLogger()
	withLogs := func(member string) Config {
		cfg := fast(t, base, "t", member, "s1", "s2", "s3")
		cfg.Logger = logs
		return cfg
	}
	// Each member hands a stream back as soon as it is asked to.
	leases := make(chan string, 100)
	serve := func(m *Member) {
		go func() {
			for l := range m.Assignments() {
				leases <- m.ID()
				go func() {
					<-l.Done()
					_ = l.Release(context.Background(), nil)
				}()
			}
		}()
	}
	a, b := join(t, withLogs("a")), join(t, withLogs("b"))
	serve(a)
	serve(b)
	for held := 0; held < 3; held++ {
		select {
		case <-leases:
		case <-time.After(10 * time.Second):
			t.Fatalf("a and b hold %d of 3 streams", held)
		}
	}
	long := strings.Repeat("x", MaxNameBytes+1)
	far := a.roster.window() + 1_000_000
	// The far "next" closes the log, as a rotation's own record does.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, a.cfg.membersURL(a.roster.current()), strings.NewReader(
		`["not a record", {"k":"hb","m":"`+long+`","i":"i"}, {"k":"next","m":"x","i":"i","w":`+strconv.FormatInt(far, 10)+`}]`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stream-Closed", "true")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("closing the members log: %s", resp.Status)
	}

	c := join(t, withLogs("c"))
	serve(c)
	deadline := time.After(fast(t, base, "t", "c").SessionTimeout / 2)
	for got := ""; got != "c"; {
		select {
		case got = <-leases:
		case <-deadline:
			for level, entries := range logs.Captured() {
				for _, e := range entries {
					t.Logf("%v %s %v %v", level, e.Msg, e.Fields, e.Err)
				}
			}
			t.Fatal("c got no stream within half a session: the others did not see its join")
		}
	}
	skipped := 0
	for _, e := range logs.Captured()[watermill.ErrorLogLevel] {
		if strings.Contains(e.Msg, "Skipping a record of the consumer group's members log") {
			skipped++
		}
	}
	if skipped < 3*2 {
		t.Fatalf("%d bad members records logged at Error, want the 3 by each of a and b", skipped)
	}
	for _, e := range logs.Captured()[watermill.InfoLogLevel] {
		if strings.Contains(e.Msg, "declared dead") {
			t.Fatalf("a member was declared dead: %v", e.Fields)
		}
	}
}
