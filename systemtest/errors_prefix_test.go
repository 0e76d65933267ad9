package systemtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// TestErrorsSayDurablestreamsOnce: an error that leaves the package names
// it once, at its start, however deep its cause.
func TestErrorsSayDurablestreamsOnce(t *testing.T) {
	base := dstest.StreamURL(t)
	closedPub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base}, nil)
	require.NoError(t, err)
	require.NoError(t, closedPub.Close())
	pub, _ := newTestPublisher(t, ds.PublisherConfig{BaseURL: base})
	_, err = pub.CloseStream(context.Background(), "closed", nil)
	require.NoError(t, err)
	sub, err := ds.NewSubscriber(ds.SubscriberConfig{BaseURL: base}, nil)
	require.NoError(t, err)
	require.NoError(t, sub.Close())
	badStore := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusBadRequest)
	}))
	defer badStore.Close()
	store, err := ds.NewStreamOffsetStore(ds.StreamOffsetStoreConfig{BaseURL: badStore.URL})
	require.NoError(t, err)

	for name, err := range map[string]error{
		"config":            func() error { _, err := ds.NewPublisher(ds.PublisherConfig{}, nil); return err }(),
		"topic":             pub.Publish("a/b", message.NewMessage(watermill.NewUUID(), []byte(`1`))),
		"marshal":           pub.Publish("t", &message.Message{UUID: "\xff", Payload: []byte(`1`), Metadata: message.Metadata{}}),
		"publisher closed":  closedPub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`1`))),
		"stream closed":     pub.Publish("closed", message.NewMessage(watermill.NewUUID(), []byte(`1`))),
		"subscriber closed": func() error { _, err := sub.Subscribe(context.Background(), "t"); return err }(),
		"store":             store.Store(context.Background(), "g", "t", ds.Position{Offset: "-1"}),
	} {
		require.Error(t, err, name)
		msg := err.Error()
		require.True(t, strings.HasPrefix(msg, "durablestreams: "), "%s: %s", name, msg)
		require.Equal(t, 1, strings.Count(msg, "durablestreams:"), "%s: %s", name, msg)
	}
}
