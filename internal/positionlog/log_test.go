package positionlog

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

func TestMain(m *testing.M) { dstest.Main(m) }

// position is a record such as the root's Position.
type position struct {
	Offset string `json:"offset"`
	Skip   int    `json:"skip"`
}

func newLogs(rotate int) *Logs[position] {
	c := &protocol.Client{HTTP: protocol.NewHTTPClient(4), RequestTimeout: 5 * time.Second, Retry: retry.DefaultPolicy()}
	return New[position](Config{Client: c, RetryPolicy: c.Retry, RotateEvery: rotate})
}

// rootURL is a root of this test's own on the shared server.
func rootURL(t *testing.T) string {
	return dstest.Shared(t).StreamURL(dstest.StreamPath(t))
}

// pos is a position of its own for each n.
func pos(n int) position { return position{Offset: strconv.Itoa(n), Skip: n} }

func mustStore(t *testing.T, ls *Logs[position], root string, p position) {
	t.Helper()
	if err := ls.Store(t.Context(), root, p); err != nil {
		t.Fatalf("Store(%v): %v", p, err)
	}
}

// mustLoad loads with logs that know nothing yet, as a restarted store.
func mustLoad(t *testing.T, root string) (position, bool) {
	t.Helper()
	p, ok, err := newLogs(1000).Load(t.Context(), root)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return p, ok
}

// status is the answer to a read of streamURL from its start.
func status(t *testing.T, streamURL string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, streamURL+"?offset=-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	protocol.DrainClose(resp.Body)
	return resp.StatusCode
}

func TestLoadWithoutpositionIsNotAnError(t *testing.T) {
	p, ok := mustLoad(t, rootURL(t))
	if ok || p != (position{}) {
		t.Fatalf("Load of a root never written = %v, %v; want none", p, ok)
	}
}

func TestStoreRotatesPointsAndDeletesOldLogs(t *testing.T) {
	root := rootURL(t)
	ls := newLogs(2)
	for n := 1; n <= 5; n++ {
		mustStore(t, ls, root, pos(n))
	}
	// Logs of two records each: 1-2 in log 0, 3-4 in log 1, 5 in log 2.
	var ptrs []logPointer
	for _, raw := range dstest.ReadJSON(t, root) {
		var p logPointer
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatalf("pointer %s: %v", raw, err)
		}
		ptrs = append(ptrs, p)
	}
	if len(ptrs) != 2 || ptrs[0].Gen != 1 || ptrs[1].Gen != 2 {
		t.Fatalf("pointers = %v, want gen 1 then gen 2", ptrs)
	}
	if got := dstest.ReadJSON(t, logURL(root, 2)); len(got) != 1 {
		t.Fatalf("log 2 holds %d records, want 1", len(got))
	}
	for _, gen := range []int{0, 1} {
		if code := status(t, logURL(root, gen)); code != http.StatusNotFound {
			t.Fatalf("rotated-away log %d answers %d, want 404 (deleted)", gen, code)
		}
	}
	if p, ok := mustLoad(t, root); !ok || p != pos(5) {
		t.Fatalf("Load = %v, %v; want %v", p, ok, pos(5))
	}
}

// A store whose log was rotated away by another store follows the
// pointer to the new log rather than writing where Load does not look.
func TestStoreFollowsARotationByAnotherStore(t *testing.T) {
	root := rootURL(t)
	a, b := newLogs(2), newLogs(2)
	mustStore(t, a, root, pos(1))
	if p, ok, err := b.Load(t.Context(), root); err != nil || !ok || p != pos(1) {
		t.Fatalf("b.Load = %v, %v, %v; want %v", p, ok, err, pos(1))
	}
	mustStore(t, a, root, pos(2))
	mustStore(t, a, root, pos(3)) // rotates to log 1, deletes log 0
	mustStore(t, b, root, pos(4)) // b still thinks log 0 is current
	if code := status(t, logURL(root, 0)); code != http.StatusNotFound {
		t.Fatalf("log 0 answers %d after b's Store, want 404 (not created again)", code)
	}
	if got := dstest.ReadJSON(t, logURL(root, 1)); len(got) != 2 {
		t.Fatalf("log 1 holds %d records, want 2 (a's and b's)", len(got))
	}
	if p, ok := mustLoad(t, root); !ok || p != pos(4) {
		t.Fatalf("Load = %v, %v; want %v", p, ok, pos(4))
	}
}

// A record larger than maxRecordBytes is refused rather than buffered.
func TestLoadRefusesAnOversizedRecord(t *testing.T) {
	root := rootURL(t)
	ls := newLogs(1000)
	mustStore(t, ls, root, pos(1))
	big := position{Offset: strings.Repeat("x", maxRecordBytes), Skip: 1}
	mustStore(t, ls, root, big)
	_, _, err := newLogs(1000).Load(t.Context(), root)
	if !errors.Is(err, reader.ErrProtocol) || !errors.Is(err, jsonscan.ErrElementTooLarge) {
		t.Fatalf("Load of an oversized record: %v, want ErrProtocol wrapping ErrElementTooLarge", err)
	}
}

// A cancelled context stops a Store and a Load with the context's error.
func TestCancelledContextStops(t *testing.T) {
	root := rootURL(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ls := newLogs(1000)
	if err := ls.Store(ctx, root, pos(1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Store with a cancelled context: %v, want context.Canceled", err)
	}
	if _, _, err := ls.Load(ctx, root); !errors.Is(err, context.Canceled) {
		t.Fatalf("Load with a cancelled context: %v, want context.Canceled", err)
	}
}
