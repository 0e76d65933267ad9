package systemtest

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// fakeWebServer is a FAKE, and not a Durable Streams server at all: a web
// server (or a proxy's default route) answering every request with status
// and no protocol header, as the Caddy server does outside its stream
// root. The reference server serves a stream at any path, so it cannot
// play this part.
func fakeWebServer(t *testing.T, status int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestPublishToANonStreamEndpointFailsAtOnce: a Publish, a Subscribe and a
// SubscribeInitialize at a URL where a web server answers 200 or 404 to
// everything fail at once (no retries) with ErrNotStreamEndpoint naming
// the URL; nothing reads as written. Before, the 200 was taken for a
// written message, and the 404 for a missing stream.
func TestPublishToANonStreamEndpointFailsAtOnce(t *testing.T) {
	for _, status := range []int{http.StatusOK, http.StatusNotFound} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			base := fakeWebServer(t, status) + "/v1/stream"
			pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base}, nil)
			require.NoError(t, err)
			defer pub.Close()
			began := time.Now()
			err = pub.Publish("orders", message.NewMessage(watermill.NewUUID(), []byte(`{}`)))
			require.ErrorIs(t, err, ds.ErrNotStreamEndpoint)
			require.NotErrorIs(t, err, ds.ErrOutcomeUnknown)
			require.NotErrorIs(t, err, ds.ErrStreamNotFound, "a 404 to a create is no missing stream")
			require.ErrorContains(t, err, base+"/orders")
			assert.Less(t, time.Since(began), 5*time.Second, "not retried")

			sub, err := ds.NewSubscriber(ds.SubscriberConfig{BaseURL: base}, nil)
			require.NoError(t, err)
			defer sub.Close()
			require.ErrorIs(t, sub.SubscribeInitialize("orders"), ds.ErrNotStreamEndpoint)
			if status == http.StatusOK {
				// A 404 to a read is a stream not created yet, which a
				// subscription waits for; a 200 without an offset is no
				// stream at all.
				_, err = sub.Subscribe(t.Context(), "orders")
				require.ErrorIs(t, err, ds.ErrNotStreamEndpoint)
			}
		})
	}
}

// TestBaseURLOutsideTheStreamRootIsSaidOnce: a BaseURL that is not under
// /v1/stream (the server's host alone, the first mistake a newcomer
// makes) is logged once per Publisher and Subscriber at Error, naming it
// and where streams are expected. The reference server serves streams at
// any path (the Publish is written where no reader configured as
// documented looks); the Caddy server answers 200 there, which fails with
// ErrNotStreamEndpoint naming the expected root. Before, both were
// silent.
func TestBaseURLOutsideTheStreamRootIsSaidOnce(t *testing.T) {
	server := dstest.Shared(t)
	logs := newLogRecorder()
	pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: server.URL}, logs)
	require.NoError(t, err)
	defer pub.Close()
	topic := "root-check-" + watermill.NewShortUUID()
	for range 2 {
		err = pub.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte(`{}`)))
		if err != nil {
			require.ErrorIs(t, err, ds.ErrNotStreamEndpoint, "the Caddy server outside its root")
		}
	}
	sub, err := ds.NewSubscriber(ds.SubscriberConfig{BaseURL: server.URL + "/v1/streams"}, logs)
	require.NoError(t, err)
	defer sub.Close()
	_ = sub.SubscribeInitialize(topic)
	_ = sub.SubscribeInitialize(topic)

	lines := logs.find("ERROR", "BaseURL is not under /v1/stream")
	require.Len(t, lines, 2, "one per Publisher and Subscriber:\n%s", logs)
	assert.Equal(t, server.URL, lines[0].Fields["base_url"])
	assert.Equal(t, server.URL+"/v1/stream", lines[0].Fields["expected_base_url"])
	assert.Equal(t, server.URL+"/v1/streams", lines[1].Fields["base_url"])

	// Under the root, nothing is said.
	quiet := newLogRecorder()
	pub2, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: dstest.StreamURL(t)}, quiet)
	require.NoError(t, err)
	defer pub2.Close()
	require.NoError(t, pub2.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`{}`))))
	assert.Empty(t, quiet.find("ERROR", ""), "%s", quiet)
}

// TestBesideTheRootTheErrorNamesTheExpectedRoot: the error of a Publish
// or Subscribe whose BaseURL misses the root, at a server that answers
// there as no stream does, says where streams were expected.
func TestBesideTheRootTheErrorNamesTheExpectedRoot(t *testing.T) {
	host := fakeWebServer(t, http.StatusOK)
	sub, err := ds.NewSubscriber(ds.SubscriberConfig{BaseURL: host + "/v1"}, nil)
	require.NoError(t, err)
	defer sub.Close()
	_, err = sub.Subscribe(t.Context(), "orders")
	require.ErrorIs(t, err, ds.ErrNotStreamEndpoint)
	require.ErrorContains(t, err, "streams were expected under "+host+"/v1/stream")

	pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: host}, nil)
	require.NoError(t, err)
	defer pub.Close()
	err = pub.Publish("orders", message.NewMessage(watermill.NewUUID(), []byte(`{}`)))
	require.ErrorIs(t, err, ds.ErrNotStreamEndpoint)
	require.ErrorContains(t, err, "streams were expected under "+host+"/v1/stream")
}

// TestFirstCreationOfEachStreamIsLoggedAtInfo: where a topic's stream
// is, is in the log once per stream: its full URL at Info, created or
// found; later Publishes add nothing.
func TestFirstCreationOfEachStreamIsLoggedAtInfo(t *testing.T) {
	base := dstest.StreamURL(t)
	httpDo(t, http.MethodPut, base+"/old", "application/json", "")
	logs := newLogRecorder()
	pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base}, logs)
	require.NoError(t, err)
	defer pub.Close()
	for _, topic := range []string{"new", "new", "old", "old"} {
		require.NoError(t, pub.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte(`{}`))))
	}
	created := logs.find("INFO", "Stream created")
	require.Len(t, created, 1, "%s", logs)
	assert.Equal(t, base+"/new", created[0].Fields["stream_url"])
	assert.Equal(t, "new", created[0].Fields["topic"])
	found := logs.find("INFO", "Stream found")
	require.Len(t, found, 1, "%s", logs)
	assert.Equal(t, base+"/old", found[0].Fields["stream_url"])
}
