package producer

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

func streamClosed(t *testing.T, url string) bool {
	t.Helper()
	resp, err := http.Head(url)
	require.NoError(t, err)
	protocol.DrainClose(resp.Body)
	return resp.Header.Get(protocol.HeaderClosed) == "true"
}

// Issue 12 item 3: an earlier incarnation with the same id and epoch
// wrote seq 0; the reference server answers our close-only seq 0 with a
// 204 that echoes Stream-Closed: true although the stream stays open. The
// close must not be reported as done until the stream is closed.
func TestCloseStreamAfterEarlierIncarnationReusedTheSeq(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, _ := testConfig(t, url)
	cfg.Epoch = 7
	resp := rawPost(t, url, cfg.ProducerID, 7, 0, `["earlier"]`)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	p := start(t, cfg)
	offset, err := p.CloseStream(t.Context(), nil)
	require.NoError(t, err)
	require.NotEmpty(t, offset)
	require.True(t, streamClosed(t, url), "CloseStream succeeded, so the stream is closed")
}

// Issue 12 item 3: a close rejected by the server leaves the producer
// usable; a second close succeeds, a third returns the same offset.
func TestCloseStreamFailureLeavesProducerUsable(t *testing.T) {
	srv := dstest.Faults(t)
	url := srv.StreamURL(dstest.StreamPath(t))
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, rec := testConfig(t, url)
	p := start(t, cfg)
	done := make(chan error, 1)
	require.NoError(t, p.Append(t.Context(), payload(0, 0), func(_ string, err error) { done <- err }))
	require.NoError(t, <-done)

	require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: url, Method: "POST", Status: 400}))
	_, err := p.CloseStream(t.Context(), payload(0, 1))
	require.ErrorContains(t, err, ": 400", "the answer's error, naming its status")
	require.False(t, streamClosed(t, url))

	require.NoError(t, p.Append(t.Context(), payload(0, 1), func(_ string, err error) { done <- err }),
		"a failed close leaves the producer usable")
	require.NoError(t, <-done)

	offset, err := p.CloseStream(t.Context(), payload(0, 2))
	require.NoError(t, err)
	require.True(t, streamClosed(t, url))
	requests := rec.requests.Load()
	again, err := p.CloseStream(t.Context(), payload(0, 2))
	require.NoError(t, err, "a repeated close by the same producer succeeds")
	require.Equal(t, offset, again)
	again, err = p.CloseStream(t.Context(), nil)
	require.NoError(t, err)
	require.Equal(t, offset, again)
	require.Equal(t, requests, rec.requests.Load(), "nothing left to send")
	requireExactlyOnce(t, url, full(1, 3))
}

// Issue 12 item 3: a close whose retries run out (5xx) may have closed the
// stream or not; either way the producer stays usable and the next close
// settles it.
func TestCloseStreamUnknownOutcomeThenCloseAgain(t *testing.T) {
	srv := dstest.Faults(t)
	url := srv.StreamURL(dstest.StreamPath(t))
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, _ := testConfig(t, url)
	cfg.Retry = retry.Policy{MaxAttempts: 2, InitialBackoff: 1, MaxBackoff: 1}
	p := start(t, cfg)

	require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: url, Method: "POST", Status: 503, Count: 2}))
	_, err := p.CloseStream(t.Context(), nil)
	require.ErrorIs(t, err, protocol.ErrOutcomeUnknown, "a 5xx may come after the server wrote")
	require.False(t, streamClosed(t, url))

	done := make(chan error, 1)
	require.NoError(t, p.Append(t.Context(), payload(0, 0), func(_ string, err error) { done <- err }))
	require.NoError(t, <-done)
	offset, err := p.CloseStream(t.Context(), nil)
	require.NoError(t, err)
	require.NotEmpty(t, offset)
	require.True(t, streamClosed(t, url))
	requireExactlyOnce(t, url, full(1, 1))
}

// A CloseStream waiting for another CloseStream of the producer ends with
// its context, having queued nothing; the first one goes on. Before, it
// waited on a mutex for as long as the first close took.
func TestCloseStreamWaitForAnotherEndsWithContext(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, rec := testConfig(t, url)
	p := start(t, cfg)
	arrived, release := rec.hold(1)
	defer release()
	first := make(chan error, 1)
	go func() {
		_, err := p.CloseStream(context.Background(), payload(0, 0))
		first <- err
	}()
	<-arrived // the first close is on the wire, held

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	second := make(chan error, 1)
	go func() {
		_, err := p.CloseStream(ctx, nil)
		second <- err
	}()
	select {
	case err := <-second:
		require.ErrorIs(t, err, context.Canceled)
		require.NotErrorIs(t, err, protocol.ErrOutcomeUnknown, "this call queued nothing")
	case <-time.After(5 * time.Second):
		t.Fatal("CloseStream ignored its context while another CloseStream was pending")
	}
	require.Equal(t, int64(1), rec.requests.Load(), "the second call sent nothing")

	release()
	require.NoError(t, <-first)
	require.True(t, streamClosed(t, url))
	requireExactlyOnce(t, url, full(1, 1))
}

// Close whose context has ended fails only for messages without a result:
// with everything written it returns nil (before: ErrProducerClosed with
// the context's error, blaming a producer that had nothing pending).
func TestCloseWithEndedContextAndNothingPendingSucceeds(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, _ := testConfig(t, url)
	p := start(t, cfg)
	done := make(chan error, 1)
	require.NoError(t, p.Append(t.Context(), payload(0, 0), func(_ string, err error) { done <- err }))
	require.NoError(t, <-done)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.NoError(t, p.Close(ctx))
	require.ErrorIs(t, p.Append(t.Context(), payload(0, 1), nil), ErrProducerClosed)
	requireExactlyOnce(t, url, full(1, 1))
}

// Close that gives up on a message on the wire says it may have been
// written, as the message's own error does; messages never sent say
// ErrProducerClosed (before: ErrProducerClosed with the context's error,
// which reads as "not written").
func TestCloseGivingUpSaysWhatMayHaveBeenWritten(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, rec := testConfig(t, url)
	cfg.MaxInFlight = 1
	p := start(t, cfg)
	arrived, release := rec.hold(1)
	defer release()
	onWire, queued := make(chan error, 1), make(chan error, 1)
	require.NoError(t, p.Append(t.Context(), payload(0, 0), func(_ string, err error) { onWire <- err }))
	<-arrived
	require.NoError(t, p.Append(t.Context(), payload(0, 1), func(_ string, err error) { queued <- err }))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := p.Close(ctx)
	require.ErrorIs(t, <-onWire, protocol.ErrOutcomeUnknown)
	queuedErr := <-queued
	require.ErrorIs(t, queuedErr, ErrProducerClosed)
	require.NotErrorIs(t, queuedErr, protocol.ErrOutcomeUnknown)
	require.ErrorIs(t, err, protocol.ErrOutcomeUnknown, "it must not read as \"not written\" alone")
}

func TestGaveUp(t *testing.T) {
	cause := fmt.Errorf("%w: %w", ErrProducerClosed, context.DeadlineExceeded)
	require.NoError(t, gaveUp(nil, cause), "nothing failed")
	var notSent errorSet
	notSent.add(cause, 2)
	require.ErrorIs(t, gaveUp(notSent.err(), cause), ErrProducerClosed)
	require.ErrorIs(t, gaveUp(notSent.err(), cause), context.DeadlineExceeded)
	mixed := notSent
	mixed.add(fmt.Errorf("%w: cut", protocol.ErrOutcomeUnknown), 1)
	require.ErrorIs(t, gaveUp(mixed.err(), cause), protocol.ErrOutcomeUnknown)
}

func TestErrorSetKeepsAnOutcomeUnknownPastItsBound(t *testing.T) {
	var s errorSet
	for i := range maxDistinctErrors + 3 {
		s.add(fmt.Errorf("refused %d", i), 1)
	}
	s.add(fmt.Errorf("%w: cut", protocol.ErrOutcomeUnknown), 1)
	s.add(fmt.Errorf("refused again"), 1)
	require.ErrorIs(t, s.err(), protocol.ErrOutcomeUnknown)
	require.Contains(t, s.err().Error(), fmt.Sprintf("%d message(s) failed", maxDistinctErrors+5))
}

// The race behind TestCloseGivingUpSaysWhatMayHaveBeenWritten failing
// under load, made certain: Close cancels the request on the wire, and the
// owner handles its answer before it hears of the stop. That answer freed
// the in-flight slot, and the owner started the queued batch after all: a
// request after Close gave up, whose message then read as "may have been
// written" (the recorder counts every request that reaches it as written).
func TestCloseGivingUpStartsNoRequest(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, rec := testConfig(t, url)
	cfg.MaxInFlight = 1
	logs := watermill.NewCaptureLogger()
	cfg.Logger = logs // traces every launch ("Sending batch")
	p := start(t, cfg)
	arrived, release := rec.hold(2)
	defer release()
	onWire, queued := make(chan error, 1), make(chan error, 1)
	require.NoError(t, p.Append(t.Context(), payload(0, 0), func(_ string, err error) { onWire <- err }))
	<-arrived
	require.NoError(t, p.Append(t.Context(), payload(0, 1), func(_ string, err error) { queued <- err }))
	p.closeGaveUp = func() {
		// The owner has the cancelled request's answer before the stop.
		require.ErrorIs(t, <-onWire, protocol.ErrOutcomeUnknown)
		// Past the pump that follows that answer: the owner takes the
		// first wake-up only back in its select (or it has exited).
		for range 2 {
			select {
			case p.wake <- struct{}{}:
			case <-p.done:
			}
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := p.Close(ctx)
	require.ErrorIs(t, err, protocol.ErrOutcomeUnknown)
	queuedErr := <-queued
	require.ErrorIs(t, queuedErr, ErrProducerClosed)
	require.NotErrorIs(t, queuedErr, protocol.ErrOutcomeUnknown)
	require.Equal(t, int64(1), rec.requests.Load(), "a request was sent after Close gave up")
	launches := 0
	for _, m := range logs.Captured()[watermill.TraceLogLevel] {
		if m.Msg == "Sending batch" {
			launches++
		}
	}
	require.Equal(t, 1, launches, "a request was started after Close gave up")
}
