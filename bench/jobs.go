package main

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// groupNames are the row groups -rows selects from.
func groupNames() []string {
	return []string{"1a", "1b", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13"}
}

// allJobs lists the rows of issue #6 in table order.
func allJobs(b *bench) []job {
	n := b.opts.messages
	rate1 := func(f func(ctx context.Context, r *runCtx) (float64, error), id string) func(context.Context, *runCtx) (map[string]float64, error) {
		return func(ctx context.Context, r *runCtx) (map[string]float64, error) {
			v, err := f(ctx, r)
			return map[string]float64{id: v}, err
		}
	}
	latencyN := b.scaled(2_000, 20)
	shareN := b.scaled(20_000, 100)
	tries, session, heartbeat, timings := 10, time.Duration(0), time.Duration(0),
		fmt.Sprintf("library defaults: SessionTimeout %v, HeartbeatInterval %v", defaultSessionTimeout, defaultHeartbeatInterval)
	joinRuns, joinWindow := 5, 3*time.Second
	if b.opts.quick {
		joinWindow = time.Second
		tries, session, heartbeat = 2, 2*time.Second, 500*time.Millisecond
		timings = "-quick: SessionTimeout 2s, HeartbeatInterval 0.5s, not the defaults"
	}
	groupN := b.scaled(10_000, 100)
	shareRuns := 0 // row 10 alternates the order of its no-group and group drains
	return []job{
		{group: "1a", runs: 5, lines: []line{{id: "1a-1", what: "raw POST, 1 msg/request, 1 connection", unit: "msgs/s"}},
			run: rate1(func(ctx context.Context, r *runCtx) (float64, error) {
				return rawSingleRun(ctx, r, "1a-1", b.scaled(10_000, 20), 1)
			}, "1a-1")},
		{group: "1a", runs: 5, lines: []line{{id: "1a-8", what: "raw POST, 1 msg/request, 8 connections", unit: "msgs/s"}},
			run: rate1(func(ctx context.Context, r *runCtx) (float64, error) {
				return rawSingleRun(ctx, r, "1a-8", b.scaled(20_000, 40), 8)
			}, "1a-8")},
		{group: "1b", runs: 5, lines: []line{{id: "1b", what: "raw POST, 100 msgs/request (JSON array), 4 connections", unit: "msgs/s"}},
			run: rate1(func(ctx context.Context, r *runCtx) (float64, error) {
				return rawBatchedRun(ctx, r, "1b", jsonMode, n, 4, 100)
			}, "1b")},
		{group: "2", runs: 3, lines: []line{
			{id: "2", what: fmt.Sprintf("Publisher sync, 1 msg/call, %d goroutines, one ordered producer", syncGoroutines), unit: "msgs/s",
				ratios: []ratio{{to: "2-raw32", atLeast: 0.9}, {to: "1b"}}},
			{id: "2-batch", what: "diagnostic: row 2's mean batch (messages per POST the server accepted)", unit: "msgs/request"},
			{id: "2-inflight", what: "diagnostic: row 2's requests in flight when one is sent (itself included), mean", unit: "requests"},
			{id: "2-409", what: "diagnostic: row 2's POSTs answered 409 (overtook their predecessor; resent), per accepted POST", unit: "%"},
		}, run: func(ctx context.Context, r *runCtx) (map[string]float64, error) {
			return publishSyncDiagRun(ctx, r, b.scaled(100_000, 200))
		}},
		{group: "2", runs: 3, lines: []line{{id: "2-raw32", what: fmt.Sprintf("row 2's ceiling: raw POST, %d msgs/request as the producer sends them, one request at a time, 1 connection (an ordered client with %d messages outstanding)", orderedBatch, syncGoroutines), unit: "msgs/s",
			ratios: []ratio{{to: "1b"}}}},
			run: rate1(func(ctx context.Context, r *runCtx) (float64, error) {
				return rawOrderedRun(ctx, r, "2-raw32", b.scaled(100_000, 200), 1, orderedBatch)
			}, "2-raw32")},
		{group: "2", runs: 3, lines: []line{{id: "2-raw32x2", what: "diagnostic: 2-raw32 on 2 connections, each its own stream (what parallelism buys without order)", unit: "msgs/s",
			ratios: []ratio{{to: "2-raw32"}, {to: "1b"}}}},
			run: rate1(func(ctx context.Context, r *runCtx) (float64, error) {
				return rawOrderedRun(ctx, r, "2-raw32x2", b.scaled(100_000, 200), 2, orderedBatch)
			}, "2-raw32x2")},
		{group: "3", runs: 3, lines: []line{{id: "3", what: fmt.Sprintf("Publisher async, 1 goroutine, %d msgs, then Close", n), unit: "msgs/s",
			ratios: []ratio{{to: "1b", atLeast: 0.9}, {to: "4", atLeast: 1.0}}}},
			run: rate1(func(ctx context.Context, r *runCtx) (float64, error) {
				res, err := publishAsyncRun(ctx, r, "3", jsonMode, n)
				return res.rate, err
			}, "3")},
		{group: "4", runs: 3, lines: []line{{id: "4", what: fmt.Sprintf("TS IdempotentProducer 0.2.7 defaults, %d msgs, then flush", n), unit: "msgs/s",
			ratios: []ratio{{to: "1b"}}}},
			run: rate1(func(ctx context.Context, r *runCtx) (float64, error) {
				return tsProducerRun(ctx, r, "4", n)
			}, "4")},
		{group: "5", runs: 5, lines: []line{
			{id: "5-raw-p50", what: "lone raw POST latency p50 (1 connection)", unit: "µs"},
			{id: "5-raw-p99", what: "lone raw POST latency p99", unit: "µs"},
			{id: "5-rawp-p50", what: "diagnostic: lone raw POST as the producer sends it (`[msg]`, Producer-* headers) p50", unit: "µs", ratios: []ratio{{to: "5-raw-p50"}}},
			{id: "5-p50", what: "lone sync Publish latency p50", unit: "µs", ratios: []ratio{{to: "5-raw-p50", atMost: 1.3}}},
			{id: "5-p99", what: "lone sync Publish latency p99", unit: "µs", ratios: []ratio{{to: "5-raw-p99"}}},
		}, run: func(ctx context.Context, r *runCtx) (map[string]float64, error) {
			return latencyRun(ctx, r, latencyN)
		}},
		{group: "6", runs: 3, lines: []line{
			{id: "6-raw", what: fmt.Sprintf("raw catch-up GET of a %d-msg backlog", n), unit: "msgs/s"},
			{id: "6-ttfb", what: "diagnostic: 6-raw, request to first body byte", unit: "ms"},
			{id: "6-body", what: "diagnostic: 6-raw, request to last body byte", unit: "ms"},
			{id: "6-gochannel", what: "row 6's ceiling: Watermill GoChannel (persistent) drained through the same Router handler, same messages", unit: "msgs/s"},
			{id: "6", what: "Subscriber + Router handler draining the same backlog", unit: "msgs/s", ratios: []ratio{{to: "6-gochannel", atLeast: 0.7}, {to: "6-raw"}}},
			{id: "6-gets", what: "diagnostic: GETs row 6's Subscriber sent (incl. the long-poll at the tail)", unit: "requests"},
			{id: "6-fetch", what: "diagnostic: row 6, Router.Run to the backlog's last body byte", unit: "ms", ratios: []ratio{{to: "6-body"}}},
			{id: "6-deliver", what: "diagnostic: row 6, last body byte to last message handled, per message", unit: "µs/msg"},
			{id: "6-nogzip", what: "diagnostic: row 6 with an HTTP client that does not ask for gzip", unit: "msgs/s", ratios: []ratio{{to: "6-raw"}}},
			{id: "6-sub", what: "diagnostic: Subscriber without Router (channel + Ack) draining the same backlog", unit: "msgs/s", ratios: []ratio{{to: "6-raw"}}},
			{id: "6-deliver-sub", what: "diagnostic: 6-sub, last body byte to last Ack, per message", unit: "µs/msg"},
		}, run: func(ctx context.Context, r *runCtx) (map[string]float64, error) {
			return catchUpRun(ctx, r, n)
		}},
		{group: "7", runs: 3, lines: []line{
			{id: "7-sync-allocs", what: "allocations per message, sync (row 2 setup)", unit: "allocs/msg"},
			{id: "7-sync-bytes", what: "bytes allocated per message, sync", unit: "B/msg"},
			{id: "7-async-allocs", what: "allocations per message, async (row 3 setup)", unit: "allocs/msg"},
			{id: "7-async-bytes", what: "bytes allocated per message, async", unit: "B/msg"},
		}, run: func(ctx context.Context, r *runCtx) (map[string]float64, error) {
			return allocRun(ctx, r, b.scaled(50_000, 200), b.scaled(100_000, 200))
		}},
		{group: "7", runs: 3, lines: []line{
			{id: "7-rss-1", what: fmt.Sprintf("peak RSS, async publisher, 1 topic x %d msgs", rssPerTopic), unit: "MiB"},
			{id: "7-rss", what: fmt.Sprintf("peak RSS, async publisher, %d topics x %d msgs", b.opts.rssTopics, rssPerTopic), unit: "MiB"},
			{id: "7-rss-topic", what: "peak RSS per extra topic", unit: "KiB"},
		}, run: func(ctx context.Context, r *runCtx) (map[string]float64, error) {
			return rssRun(ctx, r, "7-rss-1", "7-rss", "7-rss-topic", b.opts.rssTopics)
		}},
		{group: "8", runs: 3, lines: []line{{id: "8-raw-100", what: "bytes 100 B: raw POST, 1 MiB requests, 4 connections", unit: "msgs/s"}},
			run: rate1(func(ctx context.Context, r *runCtx) (float64, error) {
				return rawBatchedRun(ctx, r, "8-raw-100", framed100, n, 4, maxRawBody)
			}, "8-raw-100")},
		{group: "8", runs: 3, lines: []line{{id: "8-pub-100", what: "bytes 100 B: Publisher async (FramedMarshaler)", unit: "msgs/s", ratios: []ratio{{to: "8-raw-100"}}}},
			run: rate1(func(ctx context.Context, r *runCtx) (float64, error) {
				res, err := publishAsyncRun(ctx, r, "8-pub-100", framed100, n)
				return res.rate, err
			}, "8-pub-100")},
		{group: "8", runs: 3, lines: []line{{id: "8-raw-64k", what: "bytes 64 KiB: raw POST, 1 MiB requests, 4 connections", unit: "msgs/s"}},
			run: rate1(func(ctx context.Context, r *runCtx) (float64, error) {
				return rawBatchedRun(ctx, r, "8-raw-64k", framed64K, b.scaled(2_000, 20), 4, maxRawBody)
			}, "8-raw-64k")},
		{group: "8", runs: 3, lines: []line{{id: "8-pub-64k", what: "bytes 64 KiB: Publisher async (FramedMarshaler)", unit: "msgs/s", ratios: []ratio{{to: "8-raw-64k"}}}},
			run: rate1(func(ctx context.Context, r *runCtx) (float64, error) {
				res, err := publishAsyncRun(ctx, r, "8-pub-64k", framed64K, b.scaled(2_000, 20))
				return res.rate, err
			}, "8-pub-64k")},
		{group: "9", runs: 3, lines: []line{
			{id: "9-mem", what: fmt.Sprintf("Subscriber + Router draining %d msgs, no group (in-memory server)", groupN), unit: "msgs/s"},
			{id: "9-mem-group", what: "the same with Checkpoint + StreamOffsetStore, Subscriber defaults", unit: "msgs/s", ratios: []ratio{{to: "9-mem"}}},
			{id: "9-mem-writes", what: "row 9-mem-group's position writes (POSTs to __offsets streams) per 1,000 msgs", unit: "writes"},
			{id: "9-file", what: fmt.Sprintf("Subscriber + Router draining %d msgs, no group (file-backed server)", groupN), unit: "msgs/s"},
			{id: "9-file-group", what: "the same with Checkpoint + StreamOffsetStore, Subscriber defaults", unit: "msgs/s", ratios: []ratio{{to: "9-file"}}},
			{id: "9-file-writes", what: "row 9-file-group's position writes per 1,000 msgs", unit: "writes"},
		}, run: func(ctx context.Context, r *runCtx) (map[string]float64, error) {
			return groupDrainRunBoth(ctx, r, groupN)
		}},
		{group: "10", runs: 3, lines: []line{
			{id: "10-nogroup", what: fmt.Sprintf("watermill-benchmark method: %d msgs already in a topic of 1 stream, Subscriber without a group + Router handler; clock from before Router.Run (Subscribe included) to the last message handled", groupN), unit: "msgs/s"},
			{id: "10-group", what: "the same with a sharing ConsumerGroup (1 member, defaults): its join into the empty group counted", unit: "msgs/s", ratios: []ratio{{to: "10-nogroup", atLeast: 0.8}}},
			{id: "10-nogroup-first", what: "diagnostic: 10-nogroup, Router.Run to the first message handled", unit: "ms"},
			{id: "10-group-first", what: "diagnostic: 10-group, Router.Run to the first message handled (the join)", unit: "ms", ratios: []ratio{{to: "10-nogroup-first"}}},
			{id: "10-group-drain", what: "diagnostic: 10-group from its first message handled to the last (the drain without the join)", unit: "msgs/s", ratios: []ratio{{to: "10-nogroup"}}},
			{id: "10-one", what: fmt.Sprintf("group drain of %d msgs, 1 member, topic of 1 stream (GroupSubscriber, in-process Router handler acks; first to last message handled)", shareN), unit: "msgs/s"},
			{id: "10-p4m1", what: "the same, topic of 4 partitions, 1 member", unit: "msgs/s", ratios: []ratio{{to: "10-one"}}},
			{id: "10-p4m2", what: "the same, 4 partitions, 2 members (one process)", unit: "msgs/s", ratios: []ratio{{to: "10-one"}, {to: "10-p4m1"}}},
			{id: "10-p4m4", what: "the same, 4 partitions, 4 members (one process)", unit: "msgs/s", ratios: []ratio{{to: "10-one"}, {to: "10-p4m1"}}},
		}, run: func(ctx context.Context, r *runCtx) (map[string]float64, error) {
			shareRuns++
			return groupShareAll(ctx, r, shareN, groupN, shareRuns%2 == 0)
		}},
		{group: "11", runs: 1, lines: []line{
			{id: "11-fail-p50", what: fmt.Sprintf("failover, single-stream topic, 2 members: active member killed (in-process: its TCP connections closed, no new ones) to first delivery by the standby, p50 of %d tries (%s)", tries, timings), unit: "ms"},
			{id: "11-fail-max", what: "the same, max", unit: "ms"},
			{id: "11-hand-p50", what: fmt.Sprintf("clean handover: active member's Close to first delivery by the standby, p50 of %d tries", tries), unit: "ms"},
			{id: "11-hand-max", what: "the same, max", unit: "ms"},
			{id: "11-joinmoves", what: "diagnostic: tries in which the standby's join took the stream from the member delivering it (rendezvous assignment)", unit: "%"},
		}, run: func(ctx context.Context, r *runCtx) (map[string]float64, error) {
			return failoverAll(ctx, r, tries, session, heartbeat)
		}},
		joinPauseJob(joinRuns, joinWindow),
		eoBenchJob(b),
	}
}

// latencyRun measures lone raw POSTs, then lone synchronous Publishes.
func latencyRun(ctx context.Context, r *runCtx, n int) (map[string]float64, error) {
	var raw, rawProducer, pub []time.Duration
	if _, err := r.timed(func() (err error) {
		raw, err = rawLatencies(ctx, r.b, n, false)
		return err
	}, "5-raw-p50", "5-raw-p99"); err != nil {
		return nil, err
	}
	if _, err := r.timed(func() (err error) {
		rawProducer, err = rawLatencies(ctx, r.b, n, true)
		return err
	}, "5-rawp-p50"); err != nil {
		return nil, err
	}
	if _, err := r.timed(func() (err error) {
		pub, err = publishLatencies(ctx, r.b, n)
		return err
	}, "5-p50", "5-p99"); err != nil {
		return nil, err
	}
	return map[string]float64{
		"5-raw-p50":  micros(percentile(raw, 50)),
		"5-raw-p99":  micros(percentile(raw, 99)),
		"5-rawp-p50": micros(percentile(rawProducer, 50)),
		"5-p50":      micros(percentile(pub, 50)),
		"5-p99":      micros(percentile(pub, 99)),
	}, nil
}

// allocRun repeats the setups of rows 2 and 3 for their allocations.
func allocRun(ctx context.Context, r *runCtx, syncN, asyncN int) (map[string]float64, error) {
	var syncRes, asyncRes pubResult
	if _, err := r.timed(func() (err error) {
		syncRes, err = publishSyncRun(ctx, r, "7-sync", syncN, nil)
		return err
	}, "7-sync-allocs", "7-sync-bytes"); err != nil {
		return nil, err
	}
	if _, err := r.timed(func() (err error) {
		asyncRes, err = publishAsyncRun(ctx, r, "7-async", jsonMode, asyncN)
		return err
	}, "7-async-allocs", "7-async-bytes"); err != nil {
		return nil, err
	}
	return map[string]float64{
		"7-sync-allocs":  syncRes.allocsPerMsg,
		"7-sync-bytes":   syncRes.bytesPerMsg,
		"7-async-allocs": asyncRes.allocsPerMsg,
		"7-async-bytes":  asyncRes.bytesPerMsg,
	}, nil
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
