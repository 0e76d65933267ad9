package durablestreams_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// A final answer after a try whose answer was lost must not say "not
// written": that try is in the stream. Before, a stream closed by another
// writer meanwhile failed the message with ErrStreamClosed alone.
func TestWrittenThenClosedByAnotherWriterSaysOutcomeUnknown(t *testing.T) {
	base := dstest.StreamURL(t)
	var closeStatus int
	var closeErr error
	lost := &answerLostTransport{base: http.DefaultTransport, then: func() {
		closeStatus, closeErr = rawRequest(http.MethodPost, base+"/t", "application/json", "", "Stream-Closed", "true")
	}}
	cfg := ds.PublisherConfig{BaseURL: base}
	cfg.HTTPClient = &http.Client{Transport: lost}
	pub, _ := newTestPublisher(t, cfg)
	require.NoError(t, pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`"first"`))))

	lost.armed.Store(1)
	err := pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`"second"`)))
	require.NoError(t, closeErr)
	require.Equal(t, http.StatusNoContent, closeStatus, "another writer closed the stream")
	require.Equal(t, []string{`"first"`, `"second"`}, payloadsOf(t, base+"/t"), "the server holds the message")
	require.ErrorIs(t, err, ds.ErrOutcomeUnknown, "the message is in the stream")

	// What the answer says of the stream holds for the messages after it,
	// which were never sent: not written.
	err = pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`"third"`)))
	require.ErrorIs(t, err, ds.ErrStreamClosed)
	require.NotErrorIs(t, err, ds.ErrOutcomeUnknown)
}

// The same when a newer producer with the same id fences this one
// (DisableAutoClaim) between the lost answer and its retry.
func TestWrittenThenFencedSaysOutcomeUnknown(t *testing.T) {
	base := dstest.StreamURL(t)
	id := "fenced-" + watermill.NewUUID()
	var newerErr error
	lost := &answerLostTransport{base: http.DefaultTransport, then: func() {
		newer, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base, ProducerID: id, DisableAutoClaim: true}, nil)
		if err != nil {
			newerErr = err
			return
		}
		newerErr = errors.Join(newer.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`"newer"`))), newer.Close())
	}}
	cfg := ds.PublisherConfig{BaseURL: base, ProducerID: id, DisableAutoClaim: true}
	cfg.HTTPClient = &http.Client{Transport: lost}
	pub, _ := newTestPublisher(t, cfg)
	require.NoError(t, pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`"first"`))))

	lost.armed.Store(1)
	err := pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`"second"`)))
	require.NoError(t, newerErr)
	require.Equal(t, []string{`"first"`, `"second"`, `"newer"`}, payloadsOf(t, base+"/t"), "the server holds the message")
	require.ErrorIs(t, err, ds.ErrOutcomeUnknown, "the message is in the stream")
	var stale *ds.StaleEpochError
	require.ErrorAs(t, err, &stale, "the answer is still there to read")

	err = pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`"third"`)))
	require.ErrorIs(t, err, ds.ErrStaleEpoch)
	require.NotErrorIs(t, err, ds.ErrOutcomeUnknown)
}

// A stream deleted and created again with another content type under a
// live Publisher: the server answers a bare 409; every Publish must fail
// with ErrContentTypeMismatch naming both types (not written), as the
// README's Troubleshooting says. Before: a generic *HTTPError 409.
func TestStreamRecreatedWithAnotherContentTypeSaysMismatch(t *testing.T) {
	pub, base := newTestPublisher(t, ds.PublisherConfig{})
	require.NoError(t, pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`"a"`))))
	code, err := rawRequest(http.MethodDelete, base+"/t", "", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, code)
	code, err = rawRequest(http.MethodPut, base+"/t", "text/plain", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, code)

	for i := range 3 {
		err := pub.Publish("t", message.NewMessage(watermill.NewUUID(), fmt.Appendf(nil, `"b%d"`, i)))
		require.ErrorIs(t, err, ds.ErrContentTypeMismatch, "publish %d", i)
		require.NotErrorIs(t, err, ds.ErrOutcomeUnknown, "publish %d", i)
		require.Contains(t, err.Error(), `"text/plain"`)
		require.Contains(t, err.Error(), `"application/json"`)
	}
	require.Empty(t, readRaw(t, base+"/t"), "nothing was written")
}
