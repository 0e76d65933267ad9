package durablestreams

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestClientBuildsThePublicErrors: the internal packages build their
// errors with the constructors newClient gives the protocol.Client, so
// errors.As finds this package's types, with the same message and matches.
func TestClientBuildsThePublicErrors(t *testing.T) {
	c, _ := ClientConfig{}.newClient(false, nil)
	t.Cleanup(c.HTTP.CloseIdleConnections)

	err := fmt.Errorf("append: %w", c.AnswerError(http.MethodPost, "http://h/s", 404, "no such stream", time.Second))
	require.EqualError(t, err, "append: POST http://h/s: 404 Not Found: no such stream")
	require.ErrorIs(t, err, ErrStreamNotFound)
	require.NotErrorIs(t, err, ErrStreamGone)
	var h *HTTPError
	require.ErrorAs(t, err, &h)
	require.Equal(t, HTTPError{Method: http.MethodPost, URL: "http://h/s", StatusCode: 404, Body: "no such stream", RetryAfter: time.Second}, *h)

	err = fmt.Errorf("append: %w", c.StaleEpochError(9, 3))
	require.EqualError(t, err, "append: producer epoch 3 is stale, server has epoch 9 (fenced by a newer producer with the same id)")
	require.ErrorIs(t, err, ErrStaleEpoch)
	var s *StaleEpochError
	require.ErrorAs(t, err, &s)
	require.Equal(t, StaleEpochError{ServerEpoch: 9, Epoch: 3}, *s)
}
