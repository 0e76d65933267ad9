package systemtest

import (
	"context"
	"fmt"
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

// Tests of streams whose history changes under a Publisher: deleted and
// recreated, expired, or lost by a restarted in-memory server.

// plainHTTP sends one request the way another client would.
func plainHTTP(t *testing.T, method, url string, header ...string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	require.NoError(t, err)
	for i := 0; i < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// countingPublisher is a publisher whose requests are counted.
func countingPublisher(t *testing.T, base string, setup func(*ds.PublisherConfig)) (*ds.Publisher, *countingTransport) {
	t.Helper()
	return countingPublisherLogging(t, base, setup, nil)
}

func countingPublisherLogging(t *testing.T, base string, setup func(*ds.PublisherConfig), logger watermill.LoggerAdapter) (*ds.Publisher, *countingTransport) {
	t.Helper()
	client, ct := newCountingClient()
	cfg := ds.PublisherConfig{BaseURL: base}
	cfg.HTTPClient = client
	if setup != nil {
		setup(&cfg)
	}
	pub, err := ds.NewPublisher(cfg, logger)
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	return pub, ct
}

func publishN(t *testing.T, pub *ds.Publisher, topic string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		require.NoError(t, pub.Publish(topic, message.NewMessage(watermill.NewUUID(), fmt.Appendf(nil, "%d", i))))
	}
}

// publishWithin publishes one message under a deadline.
func publishWithin(pub *ds.Publisher, topic string, payload string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	msg := message.NewMessage(watermill.NewUUID(), []byte(payload))
	msg.SetContext(ctx)
	return pub.Publish(topic, msg)
}

func payloadsOf(t *testing.T, streamURL string) []string {
	t.Helper()
	var out []string
	for _, m := range decodeAll(t, readJSONStream(t, streamURL)) {
		out = append(out, string(m.Payload))
	}
	return out
}

// Issue 12 item 1: after the stream was deleted and created again, the
// server no longer knows the producer and answers 409 "expected seq 0".
// Before: ~5,800 POSTs in 3 s, and the message was never written.
func TestPublishAfterStreamRecreatedStartsNewEpoch(t *testing.T) {
	base := dstest.StreamURL(t)
	logs := watermill.NewCaptureLogger()
	pub, ct := countingPublisherLogging(t, base, nil, logs)
	publishN(t, pub, "orders", 0, 10)

	url := base + "/orders"
	require.Contains(t, []int{http.StatusOK, http.StatusNoContent}, plainHTTP(t, http.MethodDelete, url))
	require.Contains(t, []int{http.StatusOK, http.StatusCreated}, plainHTTP(t, http.MethodPut, url, "Content-Type", "application/json"))

	before := ct.posts.Load()
	err := publishWithin(pub, "orders", "10", 3*time.Second)
	posts := ct.posts.Load() - before
	t.Logf("POSTs for one message after the stream was recreated: %d", posts)
	require.NoError(t, err)
	require.LessOrEqual(t, posts, int64(3), "one 409, then seq 0 of a new epoch")
	require.Equal(t, []string{"10"}, payloadsOf(t, url))
	lost := 0
	for _, m := range logs.Captured()[watermill.InfoLogLevel] {
		if strings.Contains(m.Msg, "no longer knows this producer") {
			lost++
			require.Equal(t, "orders", m.Fields["topic"])
		}
	}
	require.Equal(t, 1, lost, "the state loss is logged once, with the topic")

	// And the producer goes on normally in its new epoch.
	publishN(t, pub, "orders", 11, 5)
	require.Equal(t, []string{"10", "11", "12", "13", "14", "15"}, payloadsOf(t, url))
}

// Issue 12 item 2: a stream deleted under a Publisher (or expired, or lost
// by a restarted in-memory server) fails the batch that meets the 404 with
// ErrStreamNotFound; the next Publish creates it again. Before: every
// Publish to the topic failed at once (10 of 10 over 3 s).
func TestPublishAfterStreamDeletedCreatesItAgain(t *testing.T) {
	base := dstest.StreamURL(t)
	pub, ct := countingPublisher(t, base, nil)
	publishN(t, pub, "orders", 0, 3)
	url := base + "/orders"
	require.Contains(t, []int{http.StatusOK, http.StatusNoContent}, plainHTTP(t, http.MethodDelete, url))

	err := publishWithin(pub, "orders", "3", 3*time.Second)
	require.ErrorIs(t, err, ds.ErrStreamNotFound)
	require.NotErrorIs(t, err, ds.ErrOutcomeUnknown, "a 404 is a definite not written")

	before := ct.all.Load()
	failures := 0
	for i := 4; i < 14; i++ {
		if publishWithin(pub, "orders", fmt.Sprint(i), 3*time.Second) != nil {
			failures++
		}
	}
	t.Logf("after the 404: %d of 10 publishes failed, %d requests", failures, ct.all.Load()-before)
	require.Zero(t, failures)
	require.LessOrEqual(t, ct.all.Load()-before, int64(11), "one PUT, then one POST per message")
	require.Equal(t, []string{"4", "5", "6", "7", "8", "9", "10", "11", "12", "13"}, payloadsOf(t, url))
}

// Issue 12 items 1 and 2: an in-memory server that restarts has forgotten
// every stream and every producer.
func TestPublishAfterInMemoryServerRestart(t *testing.T) {
	srv := dstest.Private(t, dstest.Options{})
	base := srv.StreamURL(dstest.StreamPath(t))
	pub, _ := countingPublisher(t, base, func(c *ds.PublisherConfig) { c.RetryPolicy = retry.Policy{MaxElapsed: 10 * time.Second} })
	publishN(t, pub, "orders", 0, 5)
	require.NoError(t, srv.Restart(false))

	// The first Publish after the restart may meet the 404; by the second
	// the stream exists again.
	if err := publishWithin(pub, "orders", "5", 5*time.Second); err != nil {
		require.ErrorIs(t, err, ds.ErrStreamNotFound)
	}
	require.NoError(t, publishWithin(pub, "orders", "6", 5*time.Second))
	got := payloadsOf(t, base+"/orders")
	require.Equal(t, "6", got[len(got)-1])
}

// Issue 12 item 2 with a stream that expires: StreamTTL.
func TestPublishAfterStreamExpired(t *testing.T) {
	base := dstest.StreamURL(t)
	pub, _ := countingPublisher(t, base, func(c *ds.PublisherConfig) { c.StreamTTL = time.Second })
	publishN(t, pub, "orders", 0, 2)
	url := base + "/orders"
	require.Eventually(t, func() bool { return plainHTTP(t, http.MethodHead, url) == http.StatusNotFound },
		10*time.Second, 100*time.Millisecond, "the stream expires")
	if err := publishWithin(pub, "orders", "2", 3*time.Second); err != nil {
		require.ErrorIs(t, err, ds.ErrStreamNotFound)
	}
	require.NoError(t, publishWithin(pub, "orders", "3", 3*time.Second))
	require.Equal(t, "3", payloadsOf(t, url)[len(payloadsOf(t, url))-1])
}

// Issue 12 item 3 through the Publisher: a repeated CloseStream succeeds
// with the same final offset, also from another producer.
func TestPublisherCloseStreamIsIdempotent(t *testing.T) {
	base := dstest.StreamURL(t)
	pub, _ := countingPublisher(t, base, nil)
	publishN(t, pub, "orders", 0, 2)
	offset, err := pub.CloseStream(t.Context(), "orders", message.NewMessage(watermill.NewUUID(), []byte(`"end"`)))
	require.NoError(t, err)
	again, err := pub.CloseStream(t.Context(), "orders", nil)
	require.NoError(t, err)
	require.Equal(t, offset, again)
	require.ErrorIs(t, publishWithin(pub, "orders", "3", 3*time.Second), ds.ErrStreamClosed)

	// Another Publisher (a new producer) closing the closed stream, with
	// no final message, succeeds too.
	other, _ := countingPublisher(t, base, nil)
	again, err = other.CloseStream(t.Context(), "orders", nil)
	require.NoError(t, err)
	require.Equal(t, offset, again)
	require.ErrorIs(t, publishWithin(other, "orders", "4", 3*time.Second), ds.ErrStreamClosed,
		"a stream that exists closed is ErrStreamClosed, not a configuration conflict")
	require.Equal(t, []string{"0", "1", `"end"`}, payloadsOf(t, base+"/orders"))
}
