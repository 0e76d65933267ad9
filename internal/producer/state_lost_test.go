package producer

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// Issue 12 item 1 with many batches in flight: the stream is deleted and
// created again while the producer is idle; every batch of the next burst
// meets a server that no longer knows the producer. All of them must be
// written once, in append order, in a new epoch, for a bounded number of
// requests.
func TestStateLostRenumbersEveryBatchInOrder(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, rec := testConfig(t, url)
	cfg.MaxInFlight = 4
	cfg.MaxBatchBytes = 1 << 10
	p := start(t, cfg)
	_, failed := appendAll(t, p, 1, 100)
	require.Empty(t, failed)
	epoch := p.Epoch()

	req, err := http.NewRequestWithContext(t.Context(), http.MethodDelete, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	protocol.DrainClose(resp.Body)
	require.Contains(t, []int{http.StatusOK, http.StatusNoContent}, resp.StatusCode)
	createStream(t, url, protocol.ContentTypeJSON)

	before := rec.requests.Load()
	ok, failed := appendAll(t, p, 4, 200)
	require.Empty(t, failed)
	require.Equal(t, full(4, 200), ok)
	requireExactlyOnce(t, url, full(4, 200))
	require.Greater(t, p.Epoch(), epoch, "a new epoch")
	t.Logf("%d POSTs for 800 messages after the state loss", rec.requests.Load()-before)
	rec.check(t)
}
