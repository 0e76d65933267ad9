package systemtest

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

// Flush's and Close's errors have the public types, as Publish's and
// OnAsyncError's do: errors.As finds *HTTPError, and the package is named
// once. Before, they were the internal errors joined.
func TestFlushAndCloseErrorsAreTyped(t *testing.T) {
	srv := dstest.Faults(t)
	base := srv.StreamURL(dstest.StreamPath(t))
	var asyncErrs atomic.Int32
	pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base, Async: true,
		OnAsyncError: func(_, _ string, _ error) { asyncErrs.Add(1) }}, nil)
	require.NoError(t, err)
	require.NoError(t, pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`1`))))
	require.NoError(t, pub.Flush(t.Context()))

	requireTyped := func(what string, err error) {
		t.Helper()
		var he *ds.HTTPError
		require.ErrorAs(t, err, &he, what)
		require.Equal(t, http.StatusBadRequest, he.StatusCode, what)
		require.True(t, strings.HasPrefix(err.Error(), "durablestreams: "), "%s: %s", what, err)
		require.Equal(t, 1, strings.Count(err.Error(), "durablestreams:"), "%s: %s", what, err)
		require.Contains(t, err.Error(), `topic "t"`, what)
	}
	require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: base + "/t", Method: "POST", Status: 400, Count: 1}))
	require.NoError(t, pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`2`))))
	requireTyped("Flush", pub.Flush(t.Context()))

	require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: base + "/t", Method: "POST", Status: 400, Count: 1}))
	require.NoError(t, pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`3`))))
	requireTyped("Close", pub.Close())
	require.Equal(t, int32(2), asyncErrs.Load())
}

// Close that gives up (CloseTimeout) on a message on the wire returns an
// error matching ErrOutcomeUnknown, as the message's own error does, and
// not ErrPublisherClosed ("not written"). Before: `producer is closed:
// context deadline exceeded`, matching no documented error.
func TestCloseGivingUpOnAMessageOnTheWireSaysOutcomeUnknown(t *testing.T) {
	srv := dstest.Faults(t)
	base := srv.StreamURL(dstest.StreamPath(t))
	posts := make(chan struct{}, 16)
	cfg := ds.PublisherConfig{BaseURL: base, Async: true, CloseTimeout: 200 * time.Millisecond,
		OnAsyncError: func(_, _ string, _ error) {}}
	cfg.HTTPClient = &http.Client{Transport: signalTransport{base: http.DefaultTransport, posts: posts}}
	pub, err := ds.NewPublisher(cfg, nil)
	require.NoError(t, err)
	require.NoError(t, pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`0`))))
	require.NoError(t, pub.Flush(t.Context()))
	<-posts

	require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: base + "/t", Method: "POST", DelayMs: 3000}))
	require.NoError(t, pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`1`))))
	<-posts // on the wire
	err = pub.Close()
	require.ErrorIs(t, err, ds.ErrOutcomeUnknown)
	require.NotErrorIs(t, err, ds.ErrPublisherClosed, "a caller retrying on ErrPublisherClosed would write it twice")
	require.True(t, strings.HasPrefix(err.Error(), "durablestreams: close: "), err.Error())
}

// Close blames only what did not finish: while it waits out CloseTimeout
// for a slow stream creation of one topic, an idle topic whose messages
// were all acknowledged is not reported, though the shared close context
// has ended by the time its producer closes. The cut-short creation is.
func TestCloseBlamesOnlyTopicsWithUnsettledMessages(t *testing.T) {
	srv := dstest.Faults(t)
	base := srv.StreamURL(dstest.StreamPath(t))
	puts := make(chan struct{}, 1)
	cfg := ds.PublisherConfig{BaseURL: base, CloseTimeout: 300 * time.Millisecond}
	cfg.HTTPClient = &http.Client{Transport: putSignal{base: http.DefaultTransport, puts: puts}}
	pub, err := ds.NewPublisher(cfg, nil)
	require.NoError(t, err)
	require.NoError(t, pub.Publish("idle", message.NewMessage(watermill.NewUUID(), []byte(`1`))))
	<-puts // the idle topic's stream creation

	require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: base + "/slow", Method: "PUT", DelayMs: 5000}))
	slow := make(chan error, 1)
	go func() { slow <- pub.Publish("slow", message.NewMessage(watermill.NewUUID(), []byte(`2`))) }()
	<-puts // the slow creation has started

	err = pub.Close()
	require.Error(t, err, "the slow topic's creation was cut short")
	require.NotContains(t, err.Error(), `topic "idle"`, "the idle topic had nothing pending: %v", err)
	require.Contains(t, err.Error(), `topic "slow"`)
	require.ErrorIs(t, err, ds.ErrPublisherClosed)
	require.NotErrorIs(t, err, ds.ErrOutcomeUnknown, "nothing was appended")
	require.ErrorIs(t, <-slow, ds.ErrPublisherClosed)
	require.Equal(t, []string{"1"}, payloadsOf(t, base+"/idle"))
}
