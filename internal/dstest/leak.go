package dstest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// RequireGoroutinesBackTo fails the test unless the goroutine count falls
// back to before within 10s, printing every stack when it does not. It
// polls a count: there is no event to wait on. Idle connections of
// http.DefaultClient are dropped first, as the tests' own requests leave
// some behind.
func RequireGoroutinesBackTo(tb testing.TB, before int) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		http.DefaultClient.CloseIdleConnections()
		n := runtime.NumGoroutine()
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			tb.Fatalf("goroutines leaked: %d now, %d before\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// RunExample runs an example's run function against the shared server
// within 15s, checks it left no goroutine behind, and returns its output.
func RunExample(t *testing.T, run func(ctx context.Context, out io.Writer, server string) error) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	server := Shared(t).URL
	before := runtime.NumGoroutine()
	var out bytes.Buffer
	if err := run(ctx, &out, server); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	RequireGoroutinesBackTo(t, before)
	return out.String()
}
