package producer

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// TestGateHoldsRequestsUntilTheStreamExists: a gated producer buffers
// appends and sends nothing before the gate opens (the stream does not
// exist yet); once it opens, the buffered messages are written in order.
func TestGateHoldsRequestsUntilTheStreamExists(t *testing.T) {
	url := dstest.StreamURL(t)
	cfg, rec := testConfig(t, url)
	gate := make(chan error, 1)
	cfg.Gate = gate
	p := start(t, cfg)

	results := make(chan error, 3)
	for i := range 3 {
		require.NoError(t, p.Append(t.Context(), payload(0, i), func(_ string, err error) { results <- err }))
	}
	require.Zero(t, rec.requests.Load(), "nothing is sent before the gate opens")
	require.False(t, p.Idle())

	createStream(t, url, protocol.ContentTypeJSON)
	gate <- nil
	for range 3 {
		require.NoError(t, <-results)
	}
	requireExactlyOnce(t, url, map[int][]int{0: seq(3)})
	rec.check(t)
}

// TestGateErrorFailsEverythingUnsent: a gate that yields an error (the
// stream could not be created) fails every buffered message with it and
// every later Append; nothing is sent, so nothing reads as "may have been
// written".
func TestGateErrorFailsEverythingUnsent(t *testing.T) {
	cfg, rec := testConfig(t, dstest.StreamURL(t))
	gate := make(chan error, 1)
	cfg.Gate = gate
	p := start(t, cfg)

	results := make(chan error, 2)
	for i := range 2 {
		require.NoError(t, p.Append(t.Context(), payload(0, i), func(_ string, err error) { results <- err }))
	}
	cause := errors.New("create stream: server unreachable")
	gate <- cause
	for range 2 {
		err := <-results
		require.ErrorIs(t, err, cause)
		require.NotErrorIs(t, err, protocol.ErrOutcomeUnknown)
	}
	require.ErrorIs(t, p.Append(t.Context(), payload(0, 9), nil), cause)
	require.ErrorIs(t, p.Broken(), cause)
	require.Zero(t, rec.requests.Load())
}

// TestCloseOfAGatedProducerFailsItsMessagesAsNotSent: Close that gives up
// on a producer whose gate never opened fails its messages with
// ErrProducerClosed, not "may have been written": none was sent.
func TestCloseOfAGatedProducerFailsItsMessagesAsNotSent(t *testing.T) {
	cfg, rec := testConfig(t, dstest.StreamURL(t))
	cfg.Gate = make(chan error, 1)
	p, err := New(cfg)
	require.NoError(t, err)
	result := make(chan error, 1)
	require.NoError(t, p.Append(t.Context(), payload(0, 0), func(_ string, err error) { result <- err }))
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // Close gives up at once
	err = p.Close(ctx)
	require.ErrorIs(t, err, ErrProducerClosed)
	require.NotErrorIs(t, err, protocol.ErrOutcomeUnknown)
	require.ErrorIs(t, <-result, ErrProducerClosed)
	require.Zero(t, rec.requests.Load())
}
