package protocol

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/retry"
)

var fast = retry.Policy{MaxAttempts: 3, InitialBackoff: time.Microsecond, MaxBackoff: time.Microsecond}

// tries replays the given tries, then succeeds.
func tries(ts ...Try) (func(int) Try, *int) {
	calls := 0
	return func(n int) Try {
		calls++
		if n <= len(ts) {
			return ts[n-1]
		}
		return Try{}
	}, &calls
}

var (
	errBefore = errors.New("connection refused before the request was written")
	errAfter  = errors.New("connection reset after the request was written")
	errFinal  = errors.New("final answer")
)

func TestRetryFinalErrors(t *testing.T) {
	notWritten := Try{Err: errBefore, Retryable: true}
	mayBe := Try{Err: errAfter, Retryable: true, MayBeWritten: true}
	for _, tc := range []struct {
		name      string
		policy    retry.Policy
		tries     []Try
		want      error // nil: success
		notWant   error
		wantCalls int
	}{
		{"success at once", fast, nil, nil, nil, 1},
		{"success after retries", fast, []Try{notWritten, mayBe}, nil, nil, 3},
		{"never written, policy runs out", fast, []Try{notWritten, notWritten, notWritten}, ErrRetriesExhausted, ErrOutcomeUnknown, 3},
		{"one try may be written", fast, []Try{notWritten, mayBe, notWritten}, ErrOutcomeUnknown, ErrRetriesExhausted, 3},
		{"final error returned as it is", fast, []Try{mayBe, {Err: errFinal}}, errFinal, ErrOutcomeUnknown, 2},
		{"zero policy tries once", retry.Policy{}, []Try{notWritten}, ErrRetriesExhausted, nil, 1},
		{"zero policy, may be written", retry.Policy{}, []Try{mayBe}, ErrOutcomeUnknown, nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			try, calls := tries(tc.tries...)
			err := Retry(t.Context(), tc.policy, 0, try)
			assert.Equal(t, tc.wantCalls, *calls)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
			if tc.notWant != nil {
				require.NotErrorIs(t, err, tc.notWant)
			}
			if tc.want != errFinal {
				require.ErrorIs(t, err, tc.tries[len(tc.tries)-1].Err, "wraps the last try's error")
			}
		})
	}
}

// TestRetryIdempotent: a request whose repeat changes nothing never reads
// as outcome unknown, even when a try was written.
func TestRetryIdempotent(t *testing.T) {
	mayBe := Try{Err: errAfter, Retryable: true, MayBeWritten: true}
	calls := 0
	err := RetryIdempotent(t.Context(), fast, 0, func() Try {
		calls++
		return mayBe
	})
	assert.Equal(t, fast.MaxAttempts, calls)
	require.ErrorIs(t, err, ErrRetriesExhausted)
	require.NotErrorIs(t, err, ErrOutcomeUnknown)
	require.ErrorIs(t, err, errAfter)
}

func TestRetryContextEnds(t *testing.T) {
	slow := retry.Policy{InitialBackoff: time.Hour, MaxBackoff: time.Hour}
	errClosed := errors.New("closing")
	for _, mayBe := range []bool{false, true} {
		ctx, cancel := context.WithCancelCause(t.Context())
		calls := 0
		err := Retry(ctx, slow, 0, func(int) Try {
			calls++
			cancel(errClosed) // ends the wait before the second try
			return Try{Err: errAfter, Retryable: true, MayBeWritten: mayBe}
		})
		require.Equal(t, 1, calls)
		require.Contains(t, err.Error(), errAfter.Error())
		if mayBe {
			require.ErrorIs(t, err, ErrOutcomeUnknown)
			require.NotErrorIs(t, err, errClosed, "outcome unknown must not match a not-written sentinel")
			require.Contains(t, err.Error(), "closing")
		} else {
			require.ErrorIs(t, err, errClosed)
			require.ErrorIs(t, err, errAfter)
			require.NotErrorIs(t, err, ErrOutcomeUnknown)
		}
	}
}

func TestRetryWaitsRetryAfter(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	// A Retry-After far longer than the context must not be cut to the
	// backoff: the context ends first and only one try is made.
	try, calls := tries(Try{Err: errBefore, Retryable: true, RetryAfter: time.Hour})
	err := Retry(ctx, retry.Policy{InitialBackoff: time.Microsecond, MaxBackoff: time.Microsecond}, 0, try)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, 1, *calls)
}

func TestStatusTry(t *testing.T) {
	for code, want := range map[int]Try{
		429: {Retryable: true, MayBeWritten: false},
		500: {Retryable: true, MayBeWritten: true},
		501: {},
		502: {Retryable: true, MayBeWritten: true},
		503: {Retryable: true, MayBeWritten: true},
		400: {},
		404: {},
		409: {},
	} {
		got := (&Client{}).StatusTry("POST", "http://h/s", code, "", 0)
		assert.Equal(t, code, got.Status)
		assert.Equal(t, want.Retryable, got.Retryable, "%d", code)
		assert.Equal(t, want.MayBeWritten, got.MayBeWritten, "%d", code)
		assert.Error(t, got.Err)
	}
}

// fakeMalformedServer is a FAKE server, not the reference one: it reads a
// whole request and answers a status line no HTTP server sends, as a
// broken proxy can. The reference server cannot be made to do it.
func fakeMalformedServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				_ = req.Body.Close()
				_, _ = conn.Write([]byte("HTTP/1.1 two hundred OK\r\n\r\n"))
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

func TestSendTellsWrittenFromNotWritten(t *testing.T) {
	c := &Client{HTTP: &http.Client{}, RequestTimeout: 5 * time.Second}

	// Nobody listens: the request is never written.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	req, err := c.NewRequest(t.Context(), http.MethodPost, closed, strings.NewReader("x"))
	require.NoError(t, err)
	_, written, err := c.Send(req)
	require.Error(t, err)
	require.False(t, written)
	try := TransportTry(err, written)
	require.True(t, try.Retryable)
	require.False(t, try.MayBeWritten)

	// The request was read whole, then the answer was malformed.
	req, err = c.NewRequest(t.Context(), http.MethodPost, fakeMalformedServer(t), strings.NewReader("x"))
	require.NoError(t, err)
	_, written, err = c.Send(req)
	require.Error(t, err)
	require.True(t, written)
	try = TransportTry(err, written)
	require.True(t, try.Retryable, "after the request was written any failure is retried (the request is idempotent)")
	require.True(t, try.MayBeWritten)
}

// TestCreateStreamNeverReportsOutcomeUnknown uses a FAKE server (httptest)
// that answers 503 to everything,
// for the client's own retries (the reference server's faults are tested
// through the publisher).
func TestCreateStreamNeverReportsOutcomeUnknown(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	c := &Client{HTTP: srv.Client(), RequestTimeout: time.Second, Retry: fast}
	err := c.CreateStream(t.Context(), srv.URL+"/s", StreamOptions{ContentType: ContentTypeJSON})
	require.ErrorIs(t, err, ErrRetriesExhausted, "creating a stream writes no message")
	require.NotErrorIs(t, err, ErrOutcomeUnknown)
	require.ErrorContains(t, err, ": 503", "the last answer's error, naming its status")
}
