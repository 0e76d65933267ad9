package producer

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// appendCall is one AppendAllValidated of n messages of writer g, from
// index first on: its payloads, and dones that send to results.
func appendCall(g, first, n int, results chan<- error) ([][]byte, []DoneFunc) {
	payloads := make([][]byte, n)
	dones := make([]DoneFunc, n)
	for j := range n {
		payloads[j] = payload(g, first+j)
		dones[j] = func(_ string, err error) { results <- err }
	}
	return payloads, dones
}

// TestAppendAllWhileClosingIsAllOrNothing: calls of several messages race
// Close; every call either buffered all its messages (all written: Close
// flushes them) or none (ErrProducerClosed, no done called, nothing of it
// in the stream).
func TestAppendAllWhileClosingIsAllOrNothing(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, rec := testConfig(t, url)
	p := start(t, cfg)

	const writers, perCall = 8, 3
	// Each writer calls until Close refuses it, waiting for every call's
	// results before the next; calls[g] are writer g's outcomes, in order.
	type call struct {
		err     error
		results []error    // of the messages of a call that returned nil
		late    chan error // where the messages of a refused call would report
	}
	calls := make([][]call, writers)
	var wg sync.WaitGroup
	started := make(chan struct{}, writers)
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := 0; ; c++ {
				results := make(chan error, perCall)
				payloads, dones := appendCall(g, c*perCall, perCall, results)
				err := p.AppendAllValidated(t.Context(), payloads, dones)
				if c == 0 {
					started <- struct{}{}
				}
				var got []error
				if err == nil {
					for range perCall {
						got = append(got, <-results)
					}
				}
				calls[g] = append(calls[g], call{err: err, results: got, late: results})
				if err != nil {
					return
				}
			}
		}()
	}
	for range writers {
		<-started
	}
	require.NoError(t, p.Close(t.Context()))
	wg.Wait()

	want := map[int][]int{}
	for g := range writers {
		want[g] = nil
		for c, call := range calls[g] {
			if call.err != nil {
				require.ErrorIs(t, call.err, ErrProducerClosed)
				require.Empty(t, call.late, "a refused call gets no result")
				continue
			}
			for j, err := range call.results {
				require.NoError(t, err)
				want[g] = append(want[g], c*perCall+j)
			}
		}
	}
	got := map[int][]int{}
	for _, raw := range readJSON(t, url) {
		var m msg
		require.NoError(t, json.Unmarshal(raw, &m))
		got[m.G] = append(got[m.G], m.I)
	}
	for g := range writers {
		require.Equal(t, want[g], got[g], "writer %d: the stream holds exactly the calls that returned nil", g)
	}
	rec.check(t)
}

// TestAppendAllWaitingForSpaceIsAllOrNothing: a call whose total does not
// fit waits for the whole of it; when its context ends meanwhile, none of
// its messages is buffered, although the first would have fit alone.
func TestAppendAllWaitingForSpaceIsAllOrNothing(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, rec := testConfig(t, url)
	cfg.MaxBatchBytes = 100
	cfg.MaxBufferedBytes = 100
	p := start(t, cfg)
	arrived, release := rec.hold(8)
	defer release()

	// 13 bytes each: 6 fill 78 bytes; one more fits, three do not.
	for i := range 6 {
		require.NoError(t, p.Append(t.Context(), payload(0, i), nil))
	}
	require.Len(t, payload(0, 0), 13)
	<-arrived // the first batch holds its buffer space on the wire

	ended, cancel := context.WithCancel(t.Context())
	cancel()
	results := make(chan error, 3)
	payloads, dones := appendCall(1, 0, 3, results)
	err := p.AppendAllValidated(ended, payloads, dones)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "waiting for producer buffer space")

	release()
	require.NoError(t, p.Flush(t.Context()))
	require.Empty(t, results, "a refused call gets no result")
	requireExactlyOnce(t, url, map[int][]int{0: seq(6)})
	rec.check(t)
}

// TestAppendAllRefusesAnInvalidPayloadFirst: one oversized or empty
// payload refuses the whole call before anything is buffered.
func TestAppendAllRefusesAnInvalidPayloadFirst(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, _ := testConfig(t, url)
	cfg.MaxBatchBytes = 100
	p := start(t, cfg)
	results := make(chan error, 3)
	payloads, dones := appendCall(0, 0, 3, results)
	payloads[1] = make([]byte, 200)
	require.ErrorIs(t, p.AppendAllValidated(t.Context(), payloads, dones), ErrMessageTooLarge)
	payloads[1] = nil
	require.ErrorIs(t, p.AppendAllValidated(t.Context(), payloads, dones), ErrEmptyMessage)
	require.NoError(t, p.Flush(t.Context()))
	require.Empty(t, results)
	require.True(t, p.Idle())
	require.Empty(t, readJSON(t, url))
}

// TestAppendAllCutsBatchesAtMaxBatchBytes: one call of more than a batch
// is cut into full batches, none over MaxBatchBytes, in order; a call
// larger than MaxBufferedBytes goes in when the buffer is empty.
func TestAppendAllCutsBatchesAtMaxBatchBytes(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, rec := testConfig(t, url)
	cfg.MaxBatchBytes = 100
	cfg.MaxBufferedBytes = 100
	cfg.MaxInFlight = 1 // one request at a time: no 409 for a batch ahead of its turn
	p := start(t, cfg)

	results := make(chan error, 20)
	var payloads [][]byte
	var dones []DoneFunc
	for g := range 2 { // 13 bytes each: 7 per batch
		ps, ds := appendCall(g, 0, 10, results)
		payloads, dones = append(payloads, ps...), append(dones, ds...)
	}
	require.NoError(t, p.AppendAllValidated(t.Context(), payloads, dones))
	require.NoError(t, p.Flush(t.Context()))
	for range 20 {
		require.NoError(t, <-results)
	}
	require.Equal(t, int64(3), rec.requests.Load(), "batches of 7, 7 and 6 messages")
	require.Equal(t, int64(1+7*14), rec.maxBody.Load(), "a full batch: [, 7 messages, 6 commas and ]")
	requireExactlyOnce(t, url, map[int][]int{0: seq(10), 1: seq(10)})
	require.NoError(t, p.AppendAllValidated(t.Context(), nil, nil), "an empty call buffers nothing")
	rec.check(t)
}
