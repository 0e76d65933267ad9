package systemtest

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/defaults"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

// closedPortURL returns a base URL on 127.0.0.1 where nothing listens: a
// listener is bound and closed, so the port refuses connections.
func closedPortURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return "http://" + addr + "/v1/stream"
}

// unresolvableURL names a host that never resolves (RFC 2606 reserves
// .invalid).
const unresolvableURL = "http://durable-streams.invalid:4437/v1/stream"

// TestPublishWithDefaultsToAServerThatIsNotThere: with default settings, a
// Publish against a closed port or an unresolvable host returns within
// about 10s (RetryPolicy.MaxUnreachable) an error that names the stream
// URL and the cause and matches ErrServerUnreachable (not written); the
// first failed try is logged at Error at once, with the URL and cause;
// Close then returns at once. Before, the Publish retried for 2 minutes
// without a log line.
func TestPublishWithDefaultsToAServerThatIsNotThere(t *testing.T) {
	t.Parallel() // waits out the default 10s, beside the other such tests
	for _, c := range []struct{ name, base, cause string }{
		{"closed port", closedPortURL(t), "connection refused"},
		{"unresolvable host", unresolvableURL, "no such host"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // each waits out the default 10s
			logs := newLogRecorder()
			pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: c.base}, logs)
			require.NoError(t, err)
			began := time.Now()
			err = pub.Publish("orders", message.NewMessage(watermill.NewUUID(), []byte(`{}`)))
			tookPublish := time.Since(began)
			require.ErrorIs(t, err, ds.ErrServerUnreachable)
			require.ErrorIs(t, err, ds.ErrRetriesExhausted)
			require.NotErrorIs(t, err, ds.ErrOutcomeUnknown)
			require.ErrorContains(t, err, c.base+"/orders")
			require.ErrorContains(t, err, c.cause)
			assert.Less(t, tookPublish, 12*time.Second)

			line, ok := logs.wait(nil, "ERROR", "Durable Streams server unreachable")
			require.True(t, ok)
			assert.Equal(t, c.base+"/orders", line.Fields["stream_url"])
			require.ErrorContains(t, line.Err, c.cause)
			firstLine := line.At.Sub(began)
			assert.Less(t, firstLine, 2*time.Second, "the first failed try is logged")

			began = time.Now()
			require.NoError(t, pub.Close())
			tookClose := time.Since(began)
			assert.Less(t, tookClose, 2*time.Second)
			t.Logf("defaults, %s: error after %s, first Error line after %s, Close %s", c.name,
				tookPublish.Round(time.Millisecond), firstLine.Round(time.Millisecond), tookClose.Round(time.Millisecond))
		})
	}
}

// TestPublishDeadlineWhileTheServerIsNotThereNamesTheCause: a Publish
// whose message deadline ends while the stream cannot be created says
// why (the unreachable server, its cause and URL), as "not written"; and
// Close after it does not wait for that creation, which nobody waits for
// any more. Before, the error was "waiting for the stream of ... to be
// created: context deadline exceeded", and Close took CloseTimeout (30s).
func TestPublishDeadlineWhileTheServerIsNotThereNamesTheCause(t *testing.T) {
	base := closedPortURL(t)
	pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base}, nil)
	require.NoError(t, err)
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	msg.SetContext(ctx)
	err = pub.Publish("orders", msg)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorIs(t, err, ds.ErrServerUnreachable)
	require.NotErrorIs(t, err, ds.ErrOutcomeUnknown, "nothing was handed over")
	require.ErrorContains(t, err, base+"/orders")
	require.ErrorContains(t, err, "connection refused")

	began := time.Now()
	require.NoError(t, pub.Close(), "nothing the caller asked for was pending")
	took := time.Since(began)
	t.Logf("Close after a Publish that gave up: %s (CloseTimeout %s)", took.Round(time.Millisecond), defaults.CloseTimeout)
	assert.Less(t, took, 2*time.Second)
}

// heldPuts holds every PUT until release is closed or its context ends,
// and tells which of the two ended it.
type heldPuts struct {
	base      http.RoundTripper
	arrived   chan struct{}
	release   chan struct{}
	cancelled chan struct{}
	once      sync.Once
}

func newHeldPuts() *heldPuts {
	return &heldPuts{base: http.DefaultTransport, arrived: make(chan struct{}, 16), release: make(chan struct{}), cancelled: make(chan struct{})}
}

func (h *heldPuts) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPut {
		h.arrived <- struct{}{}
		select {
		case <-h.release:
		case <-req.Context().Done():
			h.once.Do(func() { close(h.cancelled) })
			return nil, req.Context().Err()
		}
	}
	return h.base.RoundTrip(req)
}

// TestAsyncPublishReturnsBeforeTheStreamExists: an Async Publish returns
// once the message is buffered, while the stream is still being created;
// the message is written once it exists. Before, the first Publish to a
// topic waited for the creation, also with Async.
func TestAsyncPublishReturnsBeforeTheStreamExists(t *testing.T) {
	base := dstest.StreamURL(t)
	held := newHeldPuts()
	cfg := ds.PublisherConfig{BaseURL: base, Async: true}
	cfg.HTTPClient = &http.Client{Transport: held}
	pub, err := ds.NewPublisher(cfg, nil)
	require.NoError(t, err)
	defer pub.Close()

	returned := make(chan error, 1)
	msg := message.NewMessage(watermill.NewUUID(), []byte(`"buffered"`))
	go func() { returned <- pub.Publish("t", msg) }()
	<-held.arrived // the creation is under way, and held
	select {
	case err := <-returned:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("an async Publish waited for the stream to be created")
	}
	close(held.release)
	require.NoError(t, pub.Flush(t.Context()))
	require.Equal(t, []string{`"buffered"`}, payloadsOf(t, base+"/t"))
}

// TestAsyncCreationFailureReachesOnAsyncError: when the stream of an
// async Publish cannot be created, its messages reach OnAsyncError with
// the creation's error (here ErrServerUnreachable, not written), and the
// next Publish tries again.
func TestAsyncCreationFailureReachesOnAsyncError(t *testing.T) {
	base := closedPortURL(t)
	failed := make(chan error, 4)
	pub, err := ds.NewPublisher(ds.PublisherConfig{
		BaseURL: base, Async: true,
		OnAsyncError: func(topic, uuid string, err error) { failed <- err },
		ClientConfig: ds.ClientConfig{RetryPolicy: retry.Policy{InitialBackoff: 10 * time.Millisecond, MaxUnreachable: 200 * time.Millisecond}},
	}, nil)
	require.NoError(t, err)
	defer pub.Close()
	for range 2 {
		require.NoError(t, pub.Publish("orders", message.NewMessage(watermill.NewUUID(), []byte(`{}`))))
		select {
		case err := <-failed:
			require.ErrorIs(t, err, ds.ErrServerUnreachable)
			require.NotErrorIs(t, err, ds.ErrOutcomeUnknown)
			require.ErrorContains(t, err, base+"/orders")
		case <-time.After(10 * time.Second):
			t.Fatal("OnAsyncError heard nothing")
		}
	}
}

// TestCloseWaitsForAsyncMessagesBehindACreation: Close waits, up to
// CloseTimeout, for a creation that buffered async messages wait for (the
// caller asked for them), and blames it when it cuts it short; only a
// creation nobody waits for is cut at once.
func TestCloseWaitsForAsyncMessagesBehindACreation(t *testing.T) {
	base := dstest.StreamURL(t)
	held := newHeldPuts()
	failed := make(chan error, 1)
	cfg := ds.PublisherConfig{BaseURL: base, Async: true, CloseTimeout: 300 * time.Millisecond,
		OnAsyncError: func(_, _ string, err error) { failed <- err }}
	cfg.HTTPClient = &http.Client{Transport: held}
	pub, err := ds.NewPublisher(cfg, nil)
	require.NoError(t, err)
	require.NoError(t, pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`1`))))
	<-held.arrived
	err = pub.Close()
	require.ErrorIs(t, err, ds.ErrPublisherClosed, "the creation was cut short at CloseTimeout, and said so")
	require.ErrorIs(t, <-failed, ds.ErrPublisherClosed)
}
