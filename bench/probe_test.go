package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// TestProbeCountsAndTimesRoundTrips: the probe behind the diagnostic rows
// counts POSTs by answer (a sequence gap gets 409) and GETs as sent, and
// times the body that carried data.
func TestProbeCountsAndTimesRoundTrips(t *testing.T) {
	url := dstest.StreamURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hc, p := probedClient(true)
	defer hc.CloseIdleConnections()
	if err := createStream(ctx, hc, url, jsonMode); err != nil {
		t.Fatal(err)
	}
	header := http.Header{}
	header.Set(protocol.HeaderProducerID, "probe-test")
	header.Set(protocol.HeaderProducerEpoch, "0")
	for _, seq := range []string{"0", "1", "5"} {
		header.Set(protocol.HeaderProducerSeq, seq)
		_, err := sendWith(ctx, hc, http.MethodPost, url, jsonMode.contentType(), []byte(`[{"n":1},{"n":2}]`), header)
		if (err != nil) != (seq == "5") {
			t.Fatalf("POST seq %s: %v", seq, err)
		}
	}
	if _, err := catchUp(ctx, hc, url, nil); err != nil {
		t.Fatal(err)
	}
	if got := p.answered(http.MethodPost, isSuccess); got != 2 {
		t.Errorf("accepted POSTs: %d, want 2", got)
	}
	if got := p.answered(http.MethodPost, func(s int) bool { return s == http.StatusConflict }); got != 1 {
		t.Errorf("POSTs answered 409: %d, want 1", got)
	}
	if got := p.sentRequests(http.MethodGet); got != 1 {
		t.Errorf("GETs sent: %d, want 1", got)
	}
	sent, first, last := p.times()
	if sent.IsZero() || first.Before(sent) || last.Before(first) {
		t.Errorf("times out of order: sent %v, first data %v, last data %v", sent, first, last)
	}
}
