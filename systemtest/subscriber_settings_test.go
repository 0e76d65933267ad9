package systemtest

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// TestCloseEndsASubscribeLoadingItsPosition: a Subscribe whose position
// load is retrying (the store answers 503) ends promptly on Close, not
// when the retry policy's two minutes run out.
func TestCloseEndsASubscribeLoadingItsPosition(t *testing.T) {
	srv := dstest.Faults(t)
	base := srv.StreamURL(dstest.StreamPath(t))
	loading := make(chan struct{})
	var once sync.Once
	inner := http.DefaultTransport.(*http.Transport).Clone()
	client := &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := inner.RoundTrip(req)
		if err == nil && resp.StatusCode == http.StatusServiceUnavailable {
			once.Do(func() { close(loading) })
		}
		return resp, err
	})}
	storeCfg := ds.StreamOffsetStoreConfig{BaseURL: base}
	storeCfg.HTTPClient = client
	store, err := ds.NewStreamOffsetStore(storeCfg)
	require.NoError(t, err)
	require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: base + "/__offsets/g/t", Method: "GET", Status: 503, Count: 100000}))
	sub, err := ds.NewSubscriber(ds.SubscriberConfig{BaseURL: base, Checkpoint: "g", OffsetStore: store}, nil)
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() {
		_, err := sub.Subscribe(t.Context(), "t")
		done <- err
	}()
	<-loading
	closed := make(chan error, 1)
	go func() { closed <- sub.Close() }()
	select {
	case err := <-done:
		require.ErrorIs(t, err, ds.ErrSubscriberClosed)
	case <-time.After(20 * time.Second):
		t.Fatal("Subscribe still loading its position 20s after Close")
	}
	require.NoError(t, <-closed)
}

// TestSubscribeRejectsAStreamInAnotherMode: a LinesMarshaler subscriber
// on a JSON-mode stream is an error at Subscribe, and at the first read
// when the stream is created later; nothing is delivered.
func TestSubscribeRejectsAStreamInAnotherMode(t *testing.T) {
	base := dstest.StreamURL(t)
	httpDo(t, "PUT", base+"/t", "application/json", "")
	httpDo(t, "POST", base+"/t", "application/json", envelopes(t, newMessages(1)...))
	sub := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: base, Unmarshaler: ds.LinesMarshaler{}})
	_, err := sub.Subscribe(t.Context(), "t")
	require.ErrorIs(t, err, ds.ErrContentTypeMismatch)
	require.Contains(t, err.Error(), `"application/json"`)
	require.Contains(t, err.Error(), `"text/plain"`)
	require.Equal(t, 1, strings.Count(err.Error(), "durablestreams:"), err.Error())

	ch, err := sub.Subscribe(t.Context(), "later")
	require.NoError(t, err)
	httpDo(t, "PUT", base+"/later", "application/json", "")
	httpDo(t, "POST", base+"/later", "application/json", envelopes(t, newMessages(1)...))
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("delivered %q", m.Payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription goes on reading a stream in another mode")
	}
}

// TestSubscribeInitializeUsesAStreamWithOtherSettings: a stream that a
// Publisher created with a TTL is used as it is, with one warning per
// topic; StrictStreamSettings makes it ErrStreamConflict; StreamTTL
// creates the stream as the Publisher would.
func TestSubscribeInitializeUsesAStreamWithOtherSettings(t *testing.T) {
	base := dstest.StreamURL(t)
	httpDo(t, "PUT", base+"/t", "application/json", "", "Stream-TTL", "3600")
	logs := newCapturingLogger()
	sub, err := ds.NewSubscriber(ds.SubscriberConfig{BaseURL: base}, logs)
	require.NoError(t, err)
	defer sub.Close()
	require.NoError(t, sub.SubscribeInitialize("t"))
	require.NoError(t, sub.SubscribeInitialize("t"))
	require.Equal(t, 1, strings.Count(logs.text(), "another TTL or expiry"), logs.text())

	strict := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: base, StrictStreamSettings: true})
	require.ErrorIs(t, strict.SubscribeInitialize("t"), ds.ErrStreamConflict)

	withTTL := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: base, StreamTTL: time.Hour, StrictStreamSettings: true})
	require.NoError(t, withTTL.SubscribeInitialize("t"), "same TTL: no conflict")
	require.NoError(t, withTTL.SubscribeInitialize("fresh"))
	httpDo(t, "PUT", base+"/fresh", "application/json", "", "Stream-TTL", "3600") // the same settings: 200

	_, err = ds.NewSubscriber(ds.SubscriberConfig{BaseURL: base, StreamTTL: time.Hour, StreamExpiresAt: time.Now().Add(time.Hour)}, nil)
	require.ErrorIs(t, err, ds.ErrInvalidConfig)
}

// TestPublisherUsesAStreamWithOtherSettings: a Publisher whose StreamTTL
// differs from the existing stream's (a deploy that changed it, or a
// stream SubscribeInitialize created) publishes to it, with one warning
// per topic; StrictStreamSettings makes it ErrStreamConflict and writes
// nothing.
func TestPublisherUsesAStreamWithOtherSettings(t *testing.T) {
	base := dstest.StreamURL(t)
	httpDo(t, "PUT", base+"/with-ttl", "application/json", "", "Stream-TTL", "3600")
	httpDo(t, "PUT", base+"/without", "application/json", "")
	logs := newCapturingLogger()
	plain, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base}, logs)
	require.NoError(t, err)
	defer plain.Close()
	withTTL, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base, StreamTTL: 2 * time.Hour}, logs)
	require.NoError(t, err)
	defer withTTL.Close()
	for range 2 {
		require.NoError(t, plain.Publish("with-ttl", message.NewMessage(watermill.NewUUID(), []byte(`1`))))
		require.NoError(t, withTTL.Publish("without", message.NewMessage(watermill.NewUUID(), []byte(`2`))))
	}
	require.Equal(t, 2, strings.Count(logs.text(), "another TTL or expiry"), "one warning per Publisher and topic:\n%s", logs.text())
	require.Len(t, readJSONStream(t, base+"/with-ttl"), 2)
	require.Len(t, readJSONStream(t, base+"/without"), 2)

	strict, _ := newTestPublisher(t, ds.PublisherConfig{BaseURL: base, StrictStreamSettings: true})
	err = strict.Publish("with-ttl", message.NewMessage(watermill.NewUUID(), []byte(`3`)))
	require.ErrorIs(t, err, ds.ErrStreamConflict)
	require.Len(t, readJSONStream(t, base+"/with-ttl"), 2)
}

// TestStreamOffsetStoreLoadRacingRotation: store B loads while store A
// rotates the log B is about to read and deletes it; B reads the new
// pointer. B then stores with what it knew (the old log), and a third
// store finds B's position.
func TestStreamOffsetStoreLoadRacingRotation(t *testing.T) {
	base := dstest.StreamURL(t)
	a, err := ds.NewStreamOffsetStore(ds.StreamOffsetStoreConfig{BaseURL: base, RotateEvery: 2})
	require.NoError(t, err)
	for i := range 2 {
		require.NoError(t, a.Store(t.Context(), "g", "t", ds.Position{Offset: "-1", Skip: i}))
	}
	rotated := ds.Position{Offset: "-1", Skip: 2}
	var rotate sync.Once
	var rotateErr error
	inner := http.DefaultTransport.(*http.Transport).Clone()
	hooked := &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := inner.RoundTrip(req)
		if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/__offsets/g/t") {
			// B has read the pointer: A rotates before B reads the log.
			rotate.Do(func() { rotateErr = a.Store(req.Context(), "g", "t", rotated) })
		}
		return resp, err
	})}
	bCfg := ds.StreamOffsetStoreConfig{BaseURL: base, RotateEvery: 2}
	bCfg.HTTPClient = hooked
	b, err := ds.NewStreamOffsetStore(bCfg)
	require.NoError(t, err)
	pos, ok, err := b.Load(t.Context(), "g", "t")
	require.NoError(t, err)
	require.NoError(t, rotateErr)
	require.True(t, ok, "the position is not lost by the rotation")
	require.Equal(t, rotated, pos)

	// A rotates again behind B's back; B's next Store must land where a
	// Load looks.
	require.NoError(t, a.Store(t.Context(), "g", "t", ds.Position{Offset: "-1", Skip: 3}))
	require.NoError(t, a.Store(t.Context(), "g", "t", ds.Position{Offset: "-1", Skip: 4}))
	mine := ds.Position{Offset: "-1", Skip: 5}
	require.NoError(t, b.Store(t.Context(), "g", "t", mine))
	fresh, err := ds.NewStreamOffsetStore(ds.StreamOffsetStoreConfig{BaseURL: base})
	require.NoError(t, err)
	pos, ok, err = fresh.Load(t.Context(), "g", "t")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, mine, pos)
	require.False(t, errors.Is(err, ds.ErrStreamNotFound))
}
