package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// The diagnostic rows of row 2 bound what an ordered producer can get:
// the server answers a request that overtakes its predecessor in the
// producer's sequence with 409, so a producer that keeps order has in
// effect one request on the server at a time.

// orderedBatch is the batch an ordered producer fed by syncGoroutines
// synchronous callers can send at best: with one request on the server,
// the others' messages wait for the next; half of the callers' messages
// each way.
const orderedBatch = syncGoroutines / 2

// rawOrderedRun spreads n messages over streams fresh streams and POSTs
// each stream's share perBody messages at a time, one request after the
// other on a connection of its own, as the library's producer sends them
// (a JSON array with Producer-Id, -Epoch and -Seq headers).
func rawOrderedRun(ctx context.Context, r *runCtx, lineID string, n, streams, perBody int) (float64, error) {
	c, err := r.b.corpusOf(jsonMode, n)
	if err != nil {
		return 0, err
	}
	hc := rawClient(streams)
	defer hc.CloseIdleConnections()
	urls := make([]string, streams)
	parts := make([]*corpus, streams)
	bodies := make([][][]byte, streams)
	for s := range streams {
		lo, hi := s*n/streams, (s+1)*n/streams
		parts[s] = &corpus{mode: c.mode, payload: c.payload, uuids: c.uuids[lo:hi], encoded: c.encoded[lo:hi]}
		bodies[s] = parts[s].batches(perBody, maxRawBody)
		_, urls[s] = r.b.newStream(lineID)
		if err := createStream(ctx, hc, urls[s], jsonMode); err != nil {
			return 0, err
		}
		defer r.b.deleteStream(urls[s])
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	elapsed, err := r.timed(func() error {
		return parallel(ctx, streams, streams, func(ctx context.Context, s int) error {
			return postInOrder(ctx, hc, urls[s], bodies[s])
		})
	}, lineID)
	if err != nil {
		return 0, err
	}
	for s := range streams {
		if err := r.b.verify(ctx, urls[s], parts[s]); err != nil {
			return 0, err
		}
	}
	return rate(n, elapsed), nil
}

// postInOrder POSTs the bodies as one producer's sequence 0, 1, 2, ...,
// each after the previous one's answer.
func postInOrder(ctx context.Context, hc *http.Client, url string, bodies [][]byte) error {
	header := http.Header{}
	header.Set(protocol.HeaderProducerID, "bench-ordered-"+uuid.NewString())
	header.Set(protocol.HeaderProducerEpoch, "0")
	for seq, body := range bodies {
		header.Set(protocol.HeaderProducerSeq, strconv.Itoa(seq))
		if _, err := sendWith(ctx, hc, http.MethodPost, url, jsonMode.contentType(), body, header); err != nil {
			return err
		}
	}
	return nil
}

// publishSyncDiagRun is row 2 with a probe on the Publisher's client (the
// one it would make itself) that counts its POSTs: the batches the server
// accepted, and the ones it answered 409 because they overtook their
// predecessor.
func publishSyncDiagRun(ctx context.Context, r *runCtx, n int) (map[string]float64, error) {
	hc, p := probedClient(false)
	defer hc.CloseIdleConnections()
	res, err := publishSyncRun(ctx, r, "2", n, hc)
	if err != nil {
		return nil, err
	}
	accepted := p.answered(http.MethodPost, isSuccess)
	conflicts := p.answered(http.MethodPost, func(status int) bool { return status == http.StatusConflict })
	if accepted == 0 {
		return nil, fmt.Errorf("the probe saw no accepted POST")
	}
	return map[string]float64{
		"2":          res.rate,
		"2-batch":    float64(n) / float64(accepted),
		"2-409":      100 * float64(conflicts) / float64(accepted),
		"2-inflight": p.meanInFlight(),
	}, nil
}
