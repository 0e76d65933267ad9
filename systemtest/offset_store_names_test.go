package systemtest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// TestStreamOffsetStoreRefusesTheControlSegment: a checkpoint (group) or
// topic "__ds" would put a stream under the protocol's reserved segment;
// the store refuses it before any request.
func TestStreamOffsetStoreRefusesTheControlSegment(t *testing.T) {
	store, err := ds.NewStreamOffsetStore(ds.StreamOffsetStoreConfig{BaseURL: "http://127.0.0.1:1/v1/stream"}) // nothing listens there: refused before any request
	require.NoError(t, err)
	defer store.Close()
	ctx := context.Background()

	_, _, err = store.Load(ctx, "__ds", "t")
	require.ErrorIs(t, err, ds.ErrInvalidConfig)
	require.ErrorContains(t, err, `"__ds" is reserved`)
	require.ErrorIs(t, store.Store(ctx, "__ds", "t", ds.Position{}), ds.ErrInvalidConfig)

	_, _, err = store.Load(ctx, "g", "__ds")
	require.ErrorIs(t, err, ds.ErrInvalidTopic)
	require.ErrorIs(t, store.Store(ctx, "g", "__ds", ds.Position{}), ds.ErrInvalidTopic)
}

// TestSubscriberCheckpointOnTheControlSegment: NewSubscriber cannot judge
// a Checkpoint (any OffsetStore may take any name), so a Checkpoint "__ds"
// with a StreamOffsetStore fails at Subscribe, with the store's
// ErrInvalidConfig, before it writes anything.
func TestSubscriberCheckpointOnTheControlSegment(t *testing.T) {
	base := dstest.StreamURL(t)
	store, err := ds.NewStreamOffsetStore(ds.StreamOffsetStoreConfig{BaseURL: base})
	require.NoError(t, err)
	defer store.Close()
	sub, err := ds.NewSubscriber(ds.SubscriberConfig{BaseURL: base, Checkpoint: "__ds", OffsetStore: store}, nil)
	require.NoError(t, err)
	defer sub.Close()
	_, err = sub.Subscribe(context.Background(), "t")
	require.ErrorIs(t, err, ds.ErrInvalidConfig)
	require.ErrorContains(t, err, `"__ds" is reserved`)
}
