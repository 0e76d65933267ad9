package protocol

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/retry"
)

// closedPort returns a base URL on 127.0.0.1 where nothing listens: a
// listener is bound and closed, so the port refuses connections.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return "http://" + addr
}

// logLine is one line a logLines logger kept.
type logLine struct {
	level, msg string
	err        error
	fields     watermill.LogFields
}

// logLines keeps every line, for tests that assert on level, URL and cause.
type logLines struct {
	mu    sync.Mutex
	lines []logLine
}

func (l *logLines) add(level, msg string, err error, f watermill.LogFields) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, logLine{level, msg, err, f})
}
func (l *logLines) Error(msg string, err error, f watermill.LogFields) { l.add("ERROR", msg, err, f) }
func (l *logLines) Info(msg string, f watermill.LogFields)             { l.add("INFO", msg, nil, f) }
func (l *logLines) Debug(msg string, f watermill.LogFields)            { l.add("DEBUG", msg, nil, f) }
func (l *logLines) Trace(msg string, f watermill.LogFields)            { l.add("TRACE", msg, nil, f) }
func (l *logLines) With(watermill.LogFields) watermill.LoggerAdapter   { return l }

func (l *logLines) all() []logLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]logLine(nil), l.lines...)
}

var refused = &net.OpError{Op: "dial", Net: "tcp", Err: &net.AddrError{Err: "test"}}

// TestUnreachable: failures before any byte reached the server are told
// from those after.
func TestUnreachable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{fmt.Errorf("create stream x: %w", &net.OpError{Op: "dial", Err: errors.New("i/o timeout")}), true},
		{&net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}, true},
		{syscall.EHOSTUNREACH, true},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, false},
		{errors.New("EOF"), false},
		{context.DeadlineExceeded, false},
	} {
		assert.Equal(t, c.want, Unreachable(c.err), "%v", c.err)
	}
}

// TestRetryStopsAtMaxUnreachable: a request against a closed port fails
// within MaxUnreachable, though MaxElapsed is far longer, with an error
// that matches ErrServerUnreachable and ErrRetriesExhausted (not written)
// and names the URL and the cause. Before, only MaxElapsed ended it.
func TestRetryStopsAtMaxUnreachable(t *testing.T) {
	url := closedPort(t) + "/v1/stream/orders"
	c := &Client{Retry: retry.Policy{InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		MaxElapsed: time.Hour, MaxUnreachable: 300 * time.Millisecond}}
	began := time.Now()
	err := c.CreateStream(t.Context(), url, StreamOptions{ContentType: ContentTypeJSON})
	took := time.Since(began)
	require.ErrorIs(t, err, ErrServerUnreachable)
	require.ErrorIs(t, err, ErrRetriesExhausted)
	require.NotErrorIs(t, err, ErrOutcomeUnknown)
	assert.Contains(t, err.Error(), url)
	assert.Contains(t, err.Error(), "connection refused")
	assert.Less(t, took, 2*time.Second, "MaxUnreachable bounds the retries")
}

// TestRetryUnresolvableHostIsUnreachable: a name that does not resolve
// (RFC 2606 reserves .invalid) is reported as unreachable, naming it.
func TestRetryUnresolvableHostIsUnreachable(t *testing.T) {
	url := "http://durable-streams.invalid:4437/v1/stream/orders"
	c := &Client{Retry: retry.Policy{InitialBackoff: 10 * time.Millisecond, MaxUnreachable: 100 * time.Millisecond}}
	_, _, err := c.Tail(t.Context(), url)
	require.ErrorIs(t, err, ErrServerUnreachable)
	assert.Contains(t, err.Error(), "durable-streams.invalid")
	assert.Contains(t, err.Error(), "no such host")
}

// TestMaxUnreachableCountsFromTheLastTryThatReachedTheServer: a request
// whose server answered (503) before it went away gets the whole
// MaxUnreachable after that answer; one that may have been written says
// so above all (ErrOutcomeUnknown), also naming the unreachable server.
func TestMaxUnreachableCountsFromTheLastTryThatReachedTheServer(t *testing.T) {
	p := retry.Policy{InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxUnreachable: time.Hour, MaxAttempts: 4}
	answered := Try{Err: answer(503), Retryable: true}
	gone := Try{Err: refused, Retryable: true}
	try, calls := tries(answered, gone, gone, gone)
	err := Retry(t.Context(), p, 0, try)
	assert.Equal(t, 4, *calls, "MaxAttempts, not MaxUnreachable, ended it")
	require.ErrorIs(t, err, ErrServerUnreachable)
	require.ErrorIs(t, err, ErrRetriesExhausted)

	written := Try{Err: errAfter, Retryable: true, MayBeWritten: true}
	try, _ = tries(written, gone, gone, gone)
	err = Retry(t.Context(), p, 0, try)
	require.ErrorIs(t, err, ErrOutcomeUnknown)
	require.ErrorIs(t, err, ErrServerUnreachable)
	require.NotErrorIs(t, err, ErrRetriesExhausted)

	// The last try reached the server: no unreachable error.
	try, _ = tries(gone, gone, gone, answered)
	err = Retry(t.Context(), p, 0, try)
	require.ErrorIs(t, err, ErrRetriesExhausted)
	require.NotErrorIs(t, err, ErrServerUnreachable)
}

// TestRetryContextEndsWhileUnreachable: the caller's context ends the
// retries; the error names its cause and that the server was unreachable.
func TestRetryContextEndsWhileUnreachable(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	err := Retry(ctx, retry.Policy{InitialBackoff: time.Millisecond}, 0, func(n int) Try {
		if n == 3 {
			cancel()
		}
		return Try{Err: refused, Retryable: true}
	})
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, err, ErrServerUnreachable)
	require.NotErrorIs(t, err, ErrOutcomeUnknown)
}

// TestRefusedPollCapsTheWait: with a refused poll, a refused connection is
// tried again within it, whatever the backoff has grown to, so that a
// restarted server is seen at once; other failures keep their backoff.
func TestRefusedPollCapsTheWait(t *testing.T) {
	p := retry.Policy{InitialBackoff: time.Hour, MaxBackoff: time.Hour, MaxAttempts: 5}
	conn := Try{Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, Retryable: true}
	try, calls := tries(conn, conn, conn, conn)
	done := make(chan error, 1)
	go func() { done <- Retry(t.Context(), p, 10*time.Millisecond, try) }()
	select {
	case err := <-done:
		require.NoError(t, err)
		assert.Equal(t, 5, *calls)
	case <-time.After(10 * time.Second):
		t.Fatal("a refused connection waited the backoff of an hour")
	}
}

// TestReachLogsTheFirstFailureThenAtABoundedRateAndTheReturn: the first
// request that cannot reach a server is one Error line with its URL (no
// credentials, no query) and cause; later failures within the interval
// add none; the first answer after is one Info line.
func TestReachLogsTheFirstFailureThenAtABoundedRateAndTheReturn(t *testing.T) {
	base := closedPort(t)
	logs := &logLines{}
	reach := &Reach{Logger: logs, Interval: time.Hour}
	c := &Client{Reach: reach}
	url := strings.Replace(base, "http://", "http://user:secret@", 1) + "/v1/stream/orders?offset=-1&token=abc"
	for range 5 {
		req, err := c.NewRequest(t.Context(), http.MethodGet, url, nil)
		require.NoError(t, err)
		_, err = c.Do(req)
		require.Error(t, err)
	}
	lines := logs.all()
	require.Len(t, lines, 1, "one line for five failures: %v", lines)
	assert.Equal(t, "ERROR", lines[0].level)
	assert.Contains(t, lines[0].msg, "unreachable")
	assert.Equal(t, base+"/v1/stream/orders", lines[0].fields["stream_url"])
	require.ErrorContains(t, lines[0].err, "connection refused")
	assert.True(t, reach.Down())
	assert.Equal(t, uint64(1), reach.Outages())
	require.ErrorContains(t, reach.LastFailure(base+"/v1/stream/x"), "connection refused")

	// The server comes back: an answer from the same host and port.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	l, err := net.Listen("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	req, err := c.NewRequest(t.Context(), http.MethodGet, base+"/v1/stream/orders", nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	DrainClose(resp.Body)
	lines = logs.all()
	require.Len(t, lines, 2)
	assert.Equal(t, "INFO", lines[1].level)
	assert.Contains(t, lines[1].msg, "answers again")
	assert.Equal(t, 5, lines[1].fields["failed_requests"])
	assert.False(t, reach.Down())
	require.NoError(t, reach.LastFailure(base))
	assert.NotContains(t, fmt.Sprint(lines), "secret")
	assert.NotContains(t, fmt.Sprint(lines), "token")
}

// TestReachRepeatsOncePerInterval: while the server stays away, a line
// every Interval says so, with the count of failed requests since the
// last line; servers are followed each on its own.
func TestReachRepeatsOncePerInterval(t *testing.T) {
	logs := &logLines{}
	reach := &Reach{Logger: logs, Interval: time.Nanosecond}
	a := &http.Request{URL: mustParse(t, "http://a.invalid/v1/stream/x")}
	b := &http.Request{URL: mustParse(t, "http://b.invalid/v1/stream/y")}
	a = a.WithContext(t.Context())
	b = b.WithContext(t.Context())
	reach.observe(a, refused)
	reach.observe(a, refused)
	reach.observe(b, refused)
	lines := logs.all()
	require.Len(t, lines, 3)
	assert.Equal(t, "Durable Streams server unreachable; retrying", lines[0].msg)
	assert.Equal(t, "Durable Streams server still unreachable; retrying", lines[1].msg)
	assert.Equal(t, 1, lines[1].fields["failed_requests"])
	assert.Equal(t, "Durable Streams server unreachable; retrying", lines[2].msg, "another server has its own state")
	assert.Equal(t, uint64(2), reach.Outages())

	reach.observe(a, nil)
	assert.True(t, reach.Down(), "b is still away")
	reach.observe(b, nil)
	assert.False(t, reach.Down())
	reach.observe(b, nil)
	assert.Len(t, logs.all(), 5, "one Info line per return")
}

// TestReachIgnoresOurOwnCancellation: a request we cancelled says
// nothing about the server.
func TestReachIgnoresOurOwnCancellation(t *testing.T) {
	logs := &logLines{}
	reach := &Reach{Logger: logs}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	req := (&http.Request{URL: mustParse(t, "http://a.invalid/x")}).WithContext(ctx)
	reach.observe(req, refused)
	assert.Empty(t, logs.all())
	assert.False(t, reach.Down())
}

func mustParse(t *testing.T, raw string) *neturl.URL {
	t.Helper()
	u, err := neturl.Parse(raw)
	require.NoError(t, err)
	return u
}
