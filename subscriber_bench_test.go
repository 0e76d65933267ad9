package durablestreams_test

import (
	"fmt"
	"testing"
	"time"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// BenchmarkGroupDrain drains a backlog of 10,000 messages without a
// consumer group and with one whose positions a StreamOffsetStore keeps,
// on the in-memory and the file-backed server, for CommitInterval values
// (the no-group row is the ceiling). It reports messages per second and
// position writes per 1,000 messages.
func BenchmarkGroupDrain(b *testing.B) {
	const backlog = 10_000
	for _, backing := range []string{"memory", "file"} {
		var srv *dstest.Server
		if backing == "memory" {
			srv = dstest.Private(b, dstest.Options{})
		} else {
			srv = dstest.Restartable(b)
		}
		for _, interval := range []time.Duration{-2, ds.CommitEveryAck, 100 * time.Millisecond, ds.DefaultCommitInterval} {
			name := "nogroup"
			if interval != -2 {
				name = "group/" + interval.String()
				if interval == ds.CommitEveryAck {
					name = "group/every-ack"
				}
			}
			n := backlog
			if interval == ds.CommitEveryAck {
				n = 1000 // one write per message: 7ms each on the file-backed server
			}
			b.Run(backing+"/"+name, func(b *testing.B) {
				var writes, msgs int64
				var took time.Duration
				for i := range b.N {
					base := srv.StreamURL(fmt.Sprintf("%s/%d", dstest.StreamPath(b), i))
					cfg := ds.SubscriberConfig{BaseURL: base}
					var store *countingStore
					if interval != -2 {
						offsets, err := ds.NewStreamOffsetStore(ds.StreamOffsetStoreConfig{BaseURL: base})
						if err != nil {
							b.Fatal(err)
						}
						store = &countingStore{OffsetStore: offsets}
						cfg.ConsumerGroup, cfg.OffsetStore, cfg.CommitInterval = "g", store, interval
					}
					sub, err := ds.NewSubscriber(cfg, nil)
					if err != nil {
						b.Fatal(err)
					}
					if err := sub.SubscribeInitialize("t"); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					publishBacklog(b, base+"/t", n, 1000)
					b.StartTimer()
					start := time.Now()
					drain(b, sub, "t", n)
					if err := sub.Close(); err != nil {
						b.Fatal(err)
					}
					took += time.Since(start)
					msgs += int64(n)
					if store != nil {
						writes += store.stores.Load()
					}
				}
				b.ReportMetric(float64(msgs)/took.Seconds(), "msgs/s")
				b.ReportMetric(float64(writes)*1000/float64(msgs), "writes/1k")
			})
		}
	}
}
