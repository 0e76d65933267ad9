package reader

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

func TestMain(m *testing.M) { dstest.Main(m) }

var fastRetry = retry.Policy{InitialBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, MaxElapsed: 10 * time.Second}

func send(t *testing.T, method, url, contentType, body string, header ...string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Less(t, resp.StatusCode, 300, "%s %s", method, url)
}

func newReader(t *testing.T, url, offset string, mode Mode) *Reader {
	t.Helper()
	r, err := New(Config{URL: url, Offset: offset, Mode: mode, RetryPolicy: fastRetry,
		Client: &protocol.Client{RequestTimeout: 5 * time.Second}, LiveTimeout: 10 * time.Second})
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return r
}

func next(t *testing.T, r *Reader) Chunk {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := r.Next(ctx)
	require.NoError(t, err)
	return c
}

func forModes(t *testing.T, f func(t *testing.T, mode Mode)) {
	t.Run("long-poll", func(t *testing.T) { f(t, LongPoll) })
	t.Run("sse", func(t *testing.T) { f(t, SSE) })
}

func TestCatchUpThenLive(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		url := dstest.StreamURL(t)
		send(t, http.MethodPut, url, "application/json", "")
		send(t, http.MethodPost, url, "application/json", `[1,2]`)
		send(t, http.MethodPost, url, "application/json", `[{"a":"x\ny"}]`)

		r := newReader(t, url, OffsetBeginning, mode)
		c := next(t, r)
		require.JSONEq(t, `[1,2,{"a":"x\ny"}]`, string(readAll(t, c)))
		require.True(t, c.JSON)
		require.Equal(t, OffsetBeginning, c.Offset)
		require.True(t, c.UpToDate)
		require.False(t, c.Closed)

		done := make(chan Chunk, 1)
		go func() {
			c, err := r.Next(t.Context())
			if err == nil {
				done <- c
			}
			close(done)
		}()
		send(t, http.MethodPost, url, "application/json", `[3]`)
		send(t, http.MethodPost, url, "application/json", `[4,5]`, protocol.HeaderClosed, "true")
		live, ok := <-done
		require.True(t, ok, "live read failed")
		require.Equal(t, c.NextOffset, live.Offset, "a chunk starts where the last ended")
		elems, err := jsonscan.SplitArray(readAll(t, live))
		require.NoError(t, err)
		require.NotEmpty(t, elems)
		require.Equal(t, "3", string(elems[0]))
		var all []string
		for _, e := range elems {
			all = append(all, string(e))
		}
		for !live.Closed {
			live = next(t, r)
			elems, err := jsonscan.SplitArray(readAll(t, live))
			require.NoError(t, err)
			for _, e := range elems {
				all = append(all, string(e))
			}
		}
		require.Equal(t, []string{"3", "4", "5"}, all)
		_, err = r.Next(t.Context())
		require.ErrorIs(t, err, io.EOF)
	})
}

func TestByteModeAndBase64SSE(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		url := dstest.StreamURL(t)
		send(t, http.MethodPut, url, "application/octet-stream", "")
		r := newReader(t, url, OffsetBeginning, mode)
		send(t, http.MethodPost, url, "application/octet-stream", "\x00\x01ab\n")
		c := next(t, r)
		require.False(t, c.JSON)
		require.Equal(t, "\x00\x01ab\n", string(readAll(t, c)))
		send(t, http.MethodPost, url, "application/octet-stream", "\xff\r\n")
		c = next(t, r)
		require.Equal(t, "\xff\r\n", string(readAll(t, c)))
	})
}

func TestStartAtTail(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		url := dstest.StreamURL(t)
		send(t, http.MethodPut, url, "application/json", "")
		send(t, http.MethodPost, url, "application/json", `["old"]`)
		r := newReader(t, url, OffsetNow, mode)
		// A first read learns the tail offset and then waits for data.
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		_, err := r.Next(ctx)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.NotEqual(t, OffsetNow, r.offset, "the tail offset is known")
		send(t, http.MethodPost, url, "application/json", `["new"]`)
		require.JSONEq(t, `["new"]`, string(readAll(t, next(t, r))))
	})
}

func TestClosedEmptyStreamIsEOF(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		url := dstest.StreamURL(t)
		send(t, http.MethodPut, url, "application/json", "")
		r := newReader(t, url, OffsetBeginning, mode)
		c := make(chan error, 1)
		go func() {
			ch, err := r.Next(t.Context())
			if err == nil && !ch.Closed {
				err = errors.New("chunk is not closed")
			}
			c <- err
		}()
		send(t, http.MethodPost, url, "application/json", "", protocol.HeaderClosed, "true")
		require.NoError(t, <-c)
		_, err := r.Next(t.Context())
		require.ErrorIs(t, err, io.EOF)
	})
}

func TestMissingStreamIsTyped(t *testing.T) {
	r := newReader(t, dstest.StreamURL(t), OffsetBeginning, LongPoll)
	_, err := r.Next(t.Context())
	require.ErrorIs(t, err, protocol.ErrStreamNotFound)
}

func TestRidesThroughFaults(t *testing.T) {
	srv := dstest.Faults(t)
	url := srv.StreamURL(dstest.StreamPath(t))
	send(t, http.MethodPut, url, "application/json", "")
	send(t, http.MethodPost, url, "application/json", `[1]`)

	require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: url, Method: "GET", Status: 503, Count: 3}))
	r := newReader(t, url, OffsetBeginning, LongPoll)
	require.JSONEq(t, `[1]`, string(readAll(t, next(t, r))))

	require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: url, Method: "GET", DropConnection: true, Count: 2}))
	send(t, http.MethodPost, url, "application/json", `[2]`)
	require.JSONEq(t, `[2]`, string(readAll(t, next(t, r))))
}

func TestFinalStatusesAreTyped(t *testing.T) {
	srv := dstest.Faults(t)
	url := srv.StreamURL(dstest.StreamPath(t))
	send(t, http.MethodPut, url, "application/json", "")
	require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: url, Method: "GET", Status: 410}))
	_, err := newReader(t, url, OffsetBeginning, LongPoll).Next(t.Context())
	require.ErrorIs(t, err, protocol.ErrStreamGone)

	require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: url, Method: "GET", Status: 503, Count: 100}))
	r, err := New(Config{URL: url, RetryPolicy: retry.Policy{InitialBackoff: time.Millisecond, MaxAttempts: 3}})
	require.NoError(t, err)
	_, err = r.Next(t.Context())
	require.ErrorIs(t, err, protocol.ErrRetriesExhausted)
	require.ErrorContains(t, err, ": 503", "the last answer's error, naming its status")
	require.False(t, Rejected(err))

	// A 400 is final, told apart by Rejected; its text is the answer's.
	require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: url, Method: "GET", Status: 400}))
	_, err = newReader(t, url, OffsetBeginning, LongPoll).Next(t.Context())
	require.True(t, Rejected(err))
	require.ErrorContains(t, err, ": 400")
	require.NotErrorIs(t, err, protocol.ErrStreamGone)
}

func TestContextCancelStopsLiveRead(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		url := dstest.StreamURL(t)
		send(t, http.MethodPut, url, "application/json", "")
		live := make(chan struct{})
		var once sync.Once
		r, err := New(Config{URL: url, Offset: OffsetBeginning, Mode: mode, RetryPolicy: fastRetry,
			LiveTimeout: 10 * time.Second,
			Client: &protocol.Client{RequestTimeout: 5 * time.Second, HTTP: &http.Client{Transport: roundTripFunc(
				func(req *http.Request) (*http.Response, error) {
					if req.URL.Query().Get("live") != "" {
						once.Do(func() { close(live) })
					}
					return http.DefaultTransport.RoundTrip(req)
				})}}})
		require.NoError(t, err)
		t.Cleanup(r.Close)
		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			<-live // the read has reached the live request
			cancel()
		}()
		start := time.Now()
		_, err = r.Next(ctx)
		require.ErrorIs(t, err, context.Canceled)
		require.Less(t, time.Since(start), time.Second)
	})
}

// TestBodyLimit: a GET answer is handed over as it arrives, whatever its
// size (its consumer bounds each message); an SSE batch is bounded.
func TestBodyLimit(t *testing.T) {
	url := dstest.StreamURL(t)
	send(t, http.MethodPut, url, "application/json", "")
	big := `["` + strings.Repeat("x", 2000) + `"]`
	send(t, http.MethodPost, url, "application/json", big)
	r, err := New(Config{URL: url, MaxBodyBytes: 1000})
	require.NoError(t, err)
	require.JSONEq(t, big, string(readAll(t, next(t, r))))

	// SSE: see TestSSEBatchOverMaxBodyBytesIsReadByGET.
}

// fakeEmptyServer answers every read at once with an empty 200 that is
// not up to date, which the reference server never does.
func TestEmptyAnswersDoNotSpin(t *testing.T) {
	var hits atomic.Int64
	fakeEmptyServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set(protocol.HeaderNextOffset, "0_0")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("[]"))
	}))
	defer fakeEmptyServer.Close()
	r, err := New(Config{URL: fakeEmptyServer.URL, RetryPolicy: retry.Policy{InitialBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	_, err = r.Next(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, hits.Load(), int64(15), "requests in one second")
}

// fakeNoOffsetServer answers without Stream-Next-Offset, as a web server
// that is no Durable Streams endpoint does: the error says so.
func TestMissingOffsetIsProtocolError(t *testing.T) {
	fakeNoOffsetServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("[1]"))
	}))
	defer fakeNoOffsetServer.Close()
	r, err := New(Config{URL: fakeNoOffsetServer.URL})
	require.NoError(t, err)
	_, err = r.Next(t.Context())
	require.ErrorIs(t, err, ErrProtocol)
	require.ErrorIs(t, err, protocol.ErrNotStreamEndpoint)
	require.ErrorContains(t, err, "GET "+fakeNoOffsetServer.URL+" answered 200 OK without Stream-Next-Offset")
}

func TestDecodeBase64(t *testing.T) {
	enc := base64.StdEncoding.EncodeToString([]byte("\x00hello"))
	got, err := decodeSSEData([]byte(enc[:4]+"\n"+enc[4:]), true)
	require.NoError(t, err)
	require.Equal(t, "\x00hello", string(got))
	_, err = decodeSSEData([]byte("!!"), true)
	require.ErrorIs(t, err, ErrProtocol)
}

func TestStopAtTail(t *testing.T) {
	url := dstest.StreamURL(t)
	send(t, http.MethodPut, url, "application/json", "")
	r, err := New(Config{URL: url, StopAtTail: true})
	require.NoError(t, err)
	_, err = r.Next(t.Context())
	require.ErrorIs(t, err, io.EOF, "an empty stream ends at once")

	send(t, http.MethodPost, url, "application/json", `[1]`)
	r, err = New(Config{URL: url, StopAtTail: true})
	require.NoError(t, err)
	c, err := r.Next(t.Context())
	require.NoError(t, err)
	require.JSONEq(t, `[1]`, string(readAll(t, c)))
	_, err = r.Next(t.Context())
	require.ErrorIs(t, err, io.EOF)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// readAll reads a chunk's body, which is valid until the next Next.
func readAll(t testing.TB, c Chunk) []byte {
	t.Helper()
	data, err := io.ReadAll(c.Body)
	require.NoError(t, err)
	return data
}
