package producer

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// TestIdleOnceFlushReturns: a producer whose Flush returned reports Idle,
// so the Publisher's reaper may release it (before, the flush marker was
// closed before the counters were updated, and Idle could still say no).
func TestIdleOnceFlushReturns(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, _ := testConfig(t, url)
	p := start(t, cfg)
	for i := range 300 {
		require.NoError(t, p.Append(t.Context(), payload(0, i), nil))
		require.NoError(t, p.Flush(t.Context()))
		require.True(t, p.Idle(), "not idle after Flush returned (message %d)", i)
	}
}
