package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/google/uuid"

	durablestreams "github.com/durablestreams/watermill-durablestreams"
)

// The peer comparison (-peers) measures other Watermill Pub/Subs on the
// same machine the way watermill-benchmark does: publish N messages from
// 64 goroutines, one per Publish call, then drain them through a Router
// handler; 16-, 64- and 256-byte payloads; runs interleaved payload by
// payload and Pub/Sub by Pub/Sub, so that every peer's row is a ratio to
// ours from the same run.

// peerPayloads are watermill-benchmark's message sizes.
var peerPayloads = []int{16, 64, 256}

// peerGoroutines publish concurrently, like watermill-benchmark.
const peerGoroutines = syncGoroutines

// peer is one Pub/Sub of the comparison.
type peer struct {
	name string
	// durability says when the peer's server makes a write durable, as
	// configured by make bench_peers; the table prints it.
	durability string
	// addr is the host:port probed before the peer runs (empty: none).
	addr string
	hint string
	// open returns a Publisher and a Subscriber for one run and a
	// function that closes both.
	open func(ctx context.Context) (message.Publisher, message.Subscriber, func() error, error)
	// serverPID is the peer's server for the CPU columns (negative: not
	// measured).
	serverPID func() int
}

// peerAddrs are where make bench_peers starts the servers.
type peerAddrs struct {
	redis, nats, postgres string
}

func (b *bench) peerList(names map[string]bool, addrs peerAddrs) ([]peer, error) {
	// oursCfg is our Publisher and Subscriber with their defaults; with
	// group, the Subscriber keeps its position in a fresh consumer group
	// on the same server (StreamOffsetStore), as the peers' consumer
	// groups do on theirs.
	oursCfg := func(baseURL string, group bool) (message.Publisher, message.Subscriber, func() error, error) {
		pub, err := durablestreams.NewPublisher(durablestreams.PublisherConfig{BaseURL: baseURL}, nil)
		if err != nil {
			return nil, nil, nil, err
		}
		cfg := durablestreams.SubscriberConfig{BaseURL: baseURL}
		var store *durablestreams.StreamOffsetStore
		if group {
			store, err = durablestreams.NewStreamOffsetStore(durablestreams.StreamOffsetStoreConfig{BaseURL: baseURL})
			if err != nil {
				_ = pub.Close()
				return nil, nil, nil, err
			}
			cfg.Checkpoint, cfg.OffsetStore = "bench-"+uuid.NewString()[:8], store
		}
		sub, err := durablestreams.NewSubscriber(cfg, nil)
		if err != nil {
			_ = pub.Close()
			return nil, nil, nil, err
		}
		return pub, sub, func() error {
			err := closeBoth(pub, sub)
			if store != nil {
				_ = store.Close()
			}
			return err
		}, nil
	}
	fileURL := func() (string, error) {
		srv, err := b.fileServer()
		if err != nil {
			return "", err
		}
		return strings.TrimRight(srv.URL, "/") + "/v1/stream", nil
	}
	filePID := func() int {
		if b.fileSrv == nil {
			return -1
		}
		return b.fileSrv.PID()
	}
	all := []peer{
		{name: "ours", durability: "none: the reference server in memory",
			open: func(context.Context) (message.Publisher, message.Subscriber, func() error, error) {
				return oursCfg(b.baseURL(), false)
			},
			serverPID: func() int { return b.srv.PID() }},
		{name: "ours-group", durability: "as ours; the Subscriber with a Checkpoint (StreamOffsetStore, defaults)",
			open: func(context.Context) (message.Publisher, message.Subscriber, func() error, error) {
				return oursCfg(b.baseURL(), true)
			},
			serverPID: func() int { return b.srv.PID() }},
		{name: "ours-file", durability: "fdatasync per append before the answer (reference server, --data-dir)",
			open: func(context.Context) (message.Publisher, message.Subscriber, func() error, error) {
				u, err := fileURL()
				if err != nil {
					return nil, nil, nil, err
				}
				return oursCfg(u, false)
			},
			serverPID: filePID},
		{name: "ours-file-group", durability: "as ours-file; the Subscriber in a ConsumerGroup (StreamOffsetStore, defaults)",
			open: func(context.Context) (message.Publisher, message.Subscriber, func() error, error) {
				u, err := fileURL()
				if err != nil {
					return nil, nil, nil, err
				}
				return oursCfg(u, true)
			},
			serverPID: filePID},
		{name: "gochannel", durability: "none: in process, no I/O (the Router's ceiling)",
			open: func(context.Context) (message.Publisher, message.Subscriber, func() error, error) {
				ps := gochannel.NewGoChannel(gochannel.Config{Persistent: true}, watermill.NopLogger{})
				return ps, ps, ps.Close, nil
			}},
		redisPeer(addrs.redis),
		natsPeer(addrs.nats),
		postgresPeer(addrs.postgres),
	}
	known := make(map[string]bool)
	var list []peer
	for _, p := range all {
		known[p.name] = true
		if names["all"] || names[p.name] || p.name == "ours" {
			list = append(list, p)
		}
	}
	for n := range names {
		if n != "all" && !known[n] {
			return nil, fmt.Errorf("-peers: unknown peer %q (known: ours-group, ours-file, ours-file-group, gochannel, redis, nats, postgres, all)", n)
		}
	}
	return list, nil
}

func closeBoth(pub message.Publisher, sub message.Subscriber) error {
	errPub := pub.Close()
	errSub := sub.Close()
	if errPub != nil {
		return errPub
	}
	return errSub
}

// reachable tells whether something listens on addr, quickly.
func reachable(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

// hostPort is the host:port of a URL such as nats://h:p or postgres://u@h:p/db.
func hostPort(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Host
}

// peerPayload is a JSON object of exactly size bytes (at least 10), so
// that every peer stores it as is and the Postgres schema's JSON payload
// column accepts it.
func peerPayload(size int) []byte {
	const head, tail = `{"d":"`, `"}`
	return []byte(head + strings.Repeat("x", max(size-len(head)-len(tail), 0)) + tail)
}

// peerResult is one run of one peer at one payload size.
type peerResult struct {
	publish, drain float64
	pubCPU, subCPU cpuUsage
}

// peerRun publishes n messages from peerGoroutines goroutines, then
// drains them through a Router handler, on a fresh topic.
func peerRun(ctx context.Context, b *bench, p peer, size, n int) (peerResult, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	pub, sub, closeAll, err := p.open(ctx)
	if err != nil {
		return peerResult{}, err
	}
	defer func() { _ = closeAll() }()
	r := &runCtx{b: b, usage: make(map[string]cpuUsage), serverPID: -1}
	if p.serverPID != nil {
		r.serverPID = p.serverPID()
	}
	payload := peerPayload(size)
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(uuid.NewString(), payload)
		msgs[i].SetContext(ctx)
	}
	topic := "bench_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	var res peerResult
	elapsed, err := r.timed(func() error {
		return parallel(ctx, peerGoroutines, n, func(_ context.Context, i int) error {
			return pub.Publish(topic, msgs[i])
		})
	}, "publish")
	if err != nil {
		return res, fmt.Errorf("publish: %w", err)
	}
	res.publish, res.pubCPU = rate(n, elapsed), r.last
	d, err := routerDrain(ctx, r, sub, topic, n, "drain")
	if err != nil {
		return res, fmt.Errorf("drain: %w", err)
	}
	res.drain, res.subCPU = d.rate, r.last
	return res, closeAll()
}

// runPeers runs the comparison and returns its Markdown table.
func (b *bench) runPeers(ctx context.Context, peers []peer, n, runs int, progress io.Writer) (string, error) {
	var active []peer
	var skipped []string
	for _, p := range peers {
		if p.addr != "" && !reachable(p.addr) {
			msg := fmt.Sprintf("%s: nothing listens on %s; %s", p.name, p.addr, p.hint)
			fmt.Fprintln(progress, "  skip", msg)
			skipped = append(skipped, msg)
			continue
		}
		active = append(active, p)
	}
	results := make(map[string][]peerResult) // by peer and size
	key := func(p peer, size int) string { return fmt.Sprintf("%s/%d", p.name, size) }
	for run := 0; run < runs; run++ {
		for _, size := range peerPayloads {
			for _, p := range active {
				if err := ctx.Err(); err != nil {
					return "", err
				}
				res, err := peerRun(ctx, b, p, size, n)
				if err != nil {
					return "", fmt.Errorf("peer %s, %d B, run %d: %w", p.name, size, run+1, err)
				}
				results[key(p, size)] = append(results[key(p, size)], res)
				fmt.Fprintf(progress, "  run %d/%d  %-15s %3d B  publish %s msgs/s  drain %s msgs/s\n",
					run+1, runs, p.name, size, thousands(int64(res.publish)), thousands(int64(res.drain)))
			}
		}
	}
	return renderPeers(active, skipped, results, key, n, runs), nil
}

func renderPeers(peers []peer, skipped []string, results map[string][]peerResult, key func(peer, int) string, n, runs int) string {
	var s strings.Builder
	fmt.Fprintf(&s, "## Peer comparison (make bench_peers)\n\n- Date: %s\n- Method: watermill-benchmark's: %d messages published from %d goroutines (one message per Publish call), then drained through a Router handler; median of %d interleaved runs\n- Ratios: the median over the runs of the row's rate divided by ours in the same run, and their range\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), n, peerGoroutines, runs)
	s.WriteString("| payload | Pub/Sub | publish msgs/s | publish vs ours | drain msgs/s | drain vs ours | server CPU publish / drain | durability |\n")
	s.WriteString("|--:|---|--:|--:|--:|--:|--:|---|\n")
	med := func(rs []peerResult, f func(peerResult) float64) float64 {
		v := make([]sample, len(rs))
		for i, r := range rs {
			v[i] = sample{value: f(r)}
		}
		st, _ := summarize(v)
		return st.median
	}
	for _, size := range peerPayloads {
		ours := results[key(peer{name: "ours"}, size)]
		for _, p := range peers {
			rs := results[key(p, size)]
			if len(rs) == 0 {
				continue
			}
			pubRate := med(rs, func(r peerResult) float64 { return r.publish })
			drainRate := med(rs, func(r peerResult) float64 { return r.drain })
			cpu := "—"
			if p.serverPID != nil {
				cpu = fmt.Sprintf("%.0f%% / %.0f%%", 100*med(rs, func(r peerResult) float64 { return r.pubCPU.server }),
					100*med(rs, func(r peerResult) float64 { return r.subCPU.server }))
			}
			fmt.Fprintf(&s, "| %d B | %s | %s | %s | %s | %s | %s | %s |\n", size, p.name,
				thousands(int64(pubRate+0.5)), pairedRatio(rs, ours, func(r peerResult) float64 { return r.publish }),
				thousands(int64(drainRate+0.5)), pairedRatio(rs, ours, func(r peerResult) float64 { return r.drain }),
				cpu, p.durability)
		}
	}
	for _, msg := range skipped {
		fmt.Fprintf(&s, "\nSkipped %s\n", msg)
	}
	return s.String()
}

// pairedRatio is the median over the runs of a peer's value divided by
// ours in the same run (the runs are interleaved, so run i of both ran
// close in time), with the range over the runs.
func pairedRatio(rs, ours []peerResult, f func(peerResult) float64) string {
	if len(rs) != len(ours) || len(rs) == 0 {
		return "—"
	}
	q := make([]sample, 0, len(rs))
	for i := range rs {
		if ref := f(ours[i]); ref > 0 {
			q = append(q, sample{value: f(rs[i]) / ref})
		}
	}
	st, ok := summarize(q)
	if !ok {
		return "—"
	}
	if st.runs == 1 {
		return formatRatio(st.median)
	}
	return fmt.Sprintf("%s (%s–%s)", formatRatio(st.median), strings.TrimSuffix(formatRatio(st.min), "×"), strings.TrimSuffix(formatRatio(st.max), "×"))
}
