package group

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
)

// BenchmarkCoordinationLatency measures what the session defaults rest on:
// how long a heartbeat append takes, and how long after its append
// returned a member long-polling the members stream sees it. It reports
// p50/p99/max of both.
func BenchmarkCoordinationLatency(b *testing.B) {
	cfg := fast(b, testBase(b), "t", "m", "t")
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := cfg.Client.CreateStream(ctx, cfg.membersURL(0), protocol.StreamOptions{ContentType: protocol.ContentTypeJSON}); err != nil {
		b.Fatal(err)
	}
	tail, _, err := cfg.Client.Tail(ctx, cfg.membersURL(0))
	if err != nil {
		b.Fatal(err)
	}
	r, err := reader.New(reader.Config{URL: cfg.membersURL(0), Offset: tail, Client: cfg.Client, RetryPolicy: cfg.RetryPolicy})
	if err != nil {
		b.Fatal(err)
	}
	seen := make(chan time.Time, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			chunk, err := r.Next(ctx)
			if err != nil {
				return
			}
			data, err := chunk.ReadData(reader.DefaultMaxBodyBytes)
			if err != nil {
				return
			}
			var recs []memberRecord
			_ = json.Unmarshal(data, &recs)
			for range recs {
				seen <- time.Now()
			}
		}
	}()
	var appends, arrivals []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		status, _, _, err := post(ctx, cfg.Client, cfg.membersURL(0), memberRecord{Member: "m", Kind: kindBeat}, -1, 0, false)
		t1 := time.Now()
		if err != nil || status/100 != 2 {
			b.Fatalf("heartbeat: %d %v", status, err)
		}
		t2 := <-seen
		appends = append(appends, t1.Sub(t0))
		arrivals = append(arrivals, max(t2.Sub(t1), 0))
		time.Sleep(10 * time.Millisecond) // a heartbeat rhythm, not a flood
	}
	b.StopTimer()
	cancel()
	<-done
	reportPercentiles(b, "append", appends)
	reportPercentiles(b, "seen", arrivals)
}

func reportPercentiles(b *testing.B, name string, ds []time.Duration) {
	slices.Sort(ds)
	at := func(q float64) float64 { return float64(ds[int(q*float64(len(ds)-1))].Microseconds()) / 1000 }
	b.ReportMetric(at(0.5), name+"-p50-ms")
	b.ReportMetric(at(0.99), name+"-p99-ms")
	b.ReportMetric(at(1), name+"-max-ms")
	b.ReportMetric(0, "ns/op")
}
