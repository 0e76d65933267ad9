package systemtest

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

// refusePosts is a FAKE answer, named as such: it answers every append
// 400 while the real server creates the stream. A real server refuses a
// valid append only with an answer that also ends the producer (a closed
// stream, a newer epoch); this one fails a batch and leaves the producer
// taking more, which is when a hook that publishes again can meet a full
// buffer.
type refusePosts struct{ base http.RoundTripper }

func (r refusePosts) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost {
		return r.base.RoundTrip(req)
	}
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		_ = req.Body.Close()
	}
	return &http.Response{StatusCode: http.StatusBadRequest, Header: http.Header{}, Request: req,
		Body: io.NopCloser(bytes.NewReader([]byte("refused by the test")))}, nil
}

// TestOnAsyncErrorMayPublishIntoAFullBuffer: a hook that publishes the
// failed message again while the buffer is full does not wait for the
// producer whose failure it reports (it used to: that producer frees the
// failed batch's space only after the hook returns), and Close returns.
func TestOnAsyncErrorMayPublishIntoAFullBuffer(t *testing.T) {
	payload := []byte(`"` + strings.Repeat("x", 600) + `"`)
	var pub *ds.Publisher
	again := make(chan error, 1)
	cfg := ds.PublisherConfig{
		BaseURL: dstest.StreamURL(t), Async: true,
		MaxBatchBytes: 1000, MaxBufferedBytes: 1000, CloseTimeout: 5 * time.Second,
		OnAsyncError: func(topic, uuid string, err error) {
			if strings.HasPrefix(uuid, "again-") {
				return
			}
			again <- pub.Publish(topic, message.NewMessage("again-"+uuid, payload))
		},
	}
	cfg.HTTPClient = &http.Client{Transport: refusePosts{base: http.DefaultTransport}}
	var err error
	pub, err = ds.NewPublisher(cfg, nil)
	require.NoError(t, err)
	require.NoError(t, pub.Publish("t", message.NewMessage(watermill.NewUUID(), payload)))
	select {
	case err := <-again:
		require.NoError(t, err, "the message is buffered again")
	case <-time.After(30 * time.Second):
		t.Fatal("the hook's Publish is stuck behind the producer that called it")
	}
	closed := make(chan error, 1)
	go func() { closed <- pub.Close() }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close is stuck")
	}
}

// TestOnAsyncErrorMayCallClose: a hook that closes the Publisher (the
// stream cannot be created: the server's port is closed) gets Close's
// answer within CloseTimeout, instead of waiting forever for the
// producer that is calling it.
func TestOnAsyncErrorMayCallClose(t *testing.T) {
	var pub *ds.Publisher
	failed, closed := make(chan error, 1), make(chan error, 1)
	cfg := ds.PublisherConfig{
		BaseURL: closedPortURL(t), Async: true, CloseTimeout: 500 * time.Millisecond,
		OnAsyncError: func(_, _ string, err error) {
			failed <- err
			closed <- pub.Close()
		},
		ClientConfig: ds.ClientConfig{RetryPolicy: retry.Policy{InitialBackoff: 10 * time.Millisecond, MaxUnreachable: 200 * time.Millisecond}},
	}
	var err error
	pub, err = ds.NewPublisher(cfg, nil)
	require.NoError(t, err)
	require.NoError(t, pub.Publish("orders", message.NewMessage(watermill.NewUUID(), []byte(`{}`))))
	select {
	case err := <-closed:
		require.ErrorIs(t, <-failed, ds.ErrServerUnreachable)
		require.ErrorContains(t, err, "OnAsyncError calls still running", "the hook's own Close waited for the hook, bounded by CloseTimeout")
	case <-time.After(30 * time.Second):
		t.Fatal("Close from the hook is stuck")
	}
	again := make(chan error, 1)
	go func() { again <- pub.Close() }()
	select {
	case err := <-again:
		require.ErrorContains(t, err, "OnAsyncError calls still running", "a later Close gives the same answer at once")
	case <-time.After(30 * time.Second):
		t.Fatal("a later Close is stuck")
	}
}
