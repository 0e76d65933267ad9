package systemtest

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
		for _, interval := range []time.Duration{-2, ds.CommitEveryAck, 100 * time.Millisecond, 0} {
			name := "nogroup"
			if interval != -2 {
				name = "group-" + interval.String()
				if interval == 0 {
					name = "group-default"
				}
				if interval == ds.CommitEveryAck {
					name = "group-every-ack"
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
						cfg.Checkpoint, cfg.OffsetStore, cfg.CommitInterval = "g", store, interval
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
					took += time.Since(start) // Close (and its one write) is not the drain
					b.StopTimer()
					if err := sub.Close(); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
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

// BenchmarkRestartAfterDrain is what a group's restart costs after it
// consumed a backlog of 20,000 messages: until its first new message,
// from the position this library stores (the end of the consumed read,
// skip 0) and from the form it stored before ({-1, 20000}: the whole
// stream read again and passed over).
func BenchmarkRestartAfterDrain(b *testing.B) {
	const backlog = 20_000
	base := dstest.StreamURL(b)
	httpDo(b, "PUT", base+"/t", "application/json", "")
	publishBacklog(b, base+"/t", backlog, 1000)
	tail := tailOf(b, base+"/t")
	for _, stored := range []ds.Position{{Offset: tail}, {Offset: "-1", Skip: backlog}} {
		name := "read-end"
		if stored.Skip > 0 {
			name = "start-plus-skip"
		}
		b.Run(name, func(b *testing.B) {
			for i := range b.N {
				b.StopTimer()
				store := ds.NewMemoryOffsetStore()
				if err := store.Store(b.Context(), "g", "t", stored); err != nil {
					b.Fatal(err)
				}
				sub, err := ds.NewSubscriber(ds.SubscriberConfig{BaseURL: base, Checkpoint: "g", OffsetStore: store}, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				ch, err := sub.Subscribe(b.Context(), "t")
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				fresh := newMessages(1)
				fresh[0].UUID = fmt.Sprintf("fresh-%d", i)
				httpDo(b, "POST", base+"/t", "application/json", envelopes(b, fresh...))
				b.StartTimer()
				got := receive(b, ch)
				if got.UUID != fresh[0].UUID {
					b.Fatalf("got %s first", got.UUID)
				}
				got.Ack()
				b.StopTimer()
				_ = sub.Close()
				stored = ds.Position{Offset: stored.Offset, Skip: stored.Skip + 1}
				b.StartTimer()
			}
		})
	}
}
