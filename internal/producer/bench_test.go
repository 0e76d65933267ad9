package producer

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// go test -run XXX -bench . -benchmem ./internal/producer/

func BenchmarkAppend(b *testing.B) {
	for _, mode := range []string{protocol.ContentTypeJSON, protocol.ContentTypeOctetStream} {
		for _, writers := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/writers=%d", mode, writers), func(b *testing.B) {
				benchAppend(b, mode, writers, 0)
			})
		}
	}
}

// BenchmarkMaxInFlight chooses DefaultMaxInFlight.
func BenchmarkMaxInFlight(b *testing.B) {
	for _, n := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("inflight=%d", n), func(b *testing.B) {
			benchAppend(b, protocol.ContentTypeJSON, 64, n)
		})
	}
}

func benchAppend(b *testing.B, contentType string, writers, inFlight int) {
	url := dstest.Shared(b).StreamURL(dstest.StreamPath(b))
	client := &protocol.Client{HTTP: &http.Client{}, RequestTimeout: 10 * time.Second}
	if err := client.CreateStream(context.Background(), url, protocol.StreamOptions{ContentType: contentType}); err != nil {
		b.Fatal(err)
	}
	p, err := New(Config{URL: url, ContentType: contentType, ProducerID: "bench", MaxInFlight: inFlight})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = p.Close(context.Background()) }()
	msg := append([]byte(`"`), bytes.Repeat([]byte("x"), 98)...)
	msg = append(msg, '"') // 100 bytes, valid JSON

	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if writers == 1 {
		for range b.N {
			if err := p.Append(ctx, msg, nil); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.SetParallelism((writers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := p.Append(ctx, msg, nil); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkSyncAppend: 64 writers, each waiting for its message's result
// before appending the next, as synchronous Publish calls do.
func BenchmarkSyncAppend(b *testing.B) {
	url := dstest.Shared(b).StreamURL(dstest.StreamPath(b))
	client := &protocol.Client{HTTP: &http.Client{}, RequestTimeout: 10 * time.Second}
	if err := client.CreateStream(context.Background(), url, protocol.StreamOptions{ContentType: protocol.ContentTypeJSON}); err != nil {
		b.Fatal(err)
	}
	p, err := New(Config{URL: url, ContentType: protocol.ContentTypeJSON, ProducerID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = p.Close(context.Background()) }()
	msg := append([]byte(`"`), bytes.Repeat([]byte("x"), 98)...)
	msg = append(msg, '"')
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		done := make(chan error, 1)
		for pb.Next() {
			if err := p.Append(ctx, msg, func(_ string, err error) { done <- err }); err != nil {
				b.Error(err)
				return
			}
			if err := <-done; err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
