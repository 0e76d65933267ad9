package group

import (
	"context"
	"net/http"
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
