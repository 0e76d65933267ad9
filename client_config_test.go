package durablestreams

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/retry"
)

// TestNewClientTakesThePolicyAsItIs: the client's requests retry under
// the configured policy itself, every field of it, with no copy between.
func TestNewClientTakesThePolicyAsItIs(t *testing.T) {
	p := retry.Policy{MaxAttempts: 1, InitialBackoff: 2 * time.Millisecond, MaxBackoff: 3 * time.Second, MaxElapsed: 4 * time.Minute, MaxUnreachable: 5 * time.Second}
	c, _ := ClientConfig{RetryPolicy: p}.newClient(false, nil)
	t.Cleanup(c.HTTP.CloseIdleConnections)
	require.Equal(t, p, c.Retry)
}
