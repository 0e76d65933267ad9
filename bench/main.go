// Command bench measures the library against the reference server and
// against what a raw HTTP client gets from the same server, and prints the
// table of issue #6 (make bench). Every row runs against one server in one
// process, interleaved run by run, so that the ratios hold on a noisy
// machine even when the absolute numbers do not. With -peers it compares
// instead with other Watermill Pub/Subs on the same machine (make
// bench_peers, peers.go).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

func main() {
	if isChild() {
		os.Exit(runChild(os.Stdout))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	quick      bool
	messages   int
	rssTopics  int
	runs       int
	rows       map[string]bool
	out        string
	cpuProfile string
	verify     bool
	// Publisher settings to try out (zero: the library's defaults).
	linger   time.Duration
	inFlight int
	// The peer comparison (instead of the rows) when peers is set.
	peers        map[string]bool
	peerMessages int
	peerAddrs    peerAddrs
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var rows string
	fs.BoolVar(&o.quick, "quick", false, "smoke test: one run per row and a tenth of the messages")
	fs.IntVar(&o.messages, "messages", 0, "messages of the big rows (default 200000, 20000 with -quick); the other rows scale with it")
	fs.IntVar(&o.rssTopics, "rss-topics", 0, "topics of the peak-RSS row (default 10000, 1000 with -quick)")
	fs.IntVar(&o.runs, "runs", 0, "runs per row (default 3 to 5 by row, 1 with -quick)")
	fs.StringVar(&rows, "rows", "", "comma-separated rows to run, e.g. 1a,1b,3 (default all: "+strings.Join(groupNames(), ",")+")")
	fs.StringVar(&o.out, "out", defaultOut(), "file the Markdown table is also written to (empty: none)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this process to the file")
	fs.BoolVar(&o.verify, "verify", false, "read every written stream back and check its message count (on with -quick)")
	fs.DurationVar(&o.linger, "linger", 0, "experiment: PublisherConfig.Linger of the Publisher rows (default: the library's)")
	fs.IntVar(&o.inFlight, "inflight", 0, "experiment: PublisherConfig.MaxInFlight of the Publisher rows (default: the library's)")
	var peers string
	fs.StringVar(&peers, "peers", "", "instead of the rows, compare with other Watermill Pub/Subs: comma-separated of ours-group, ours-file, ours-file-group, gochannel, redis, nats, postgres, or all (make bench_peers)")
	fs.IntVar(&o.peerMessages, "peer-messages", 0, "messages per peer run (default 20000, 2000 with -quick)")
	fs.StringVar(&o.peerAddrs.redis, "redis", "127.0.0.1:16379", "Redis address for -peers")
	fs.StringVar(&o.peerAddrs.nats, "nats", "nats://127.0.0.1:14222", "NATS URL (JetStream enabled) for -peers")
	fs.StringVar(&o.peerAddrs.postgres, "postgres", "postgres://postgres@127.0.0.1:15432/postgres?sslmode=disable", "PostgreSQL URL for -peers")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if peers != "" {
		o.peers = make(map[string]bool)
		for _, p := range strings.Split(peers, ",") {
			o.peers[strings.TrimSpace(p)] = true
		}
	}
	if o.peerMessages == 0 {
		o.peerMessages = 20_000
		if o.quick {
			o.peerMessages = 2_000
		}
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.messages == 0 {
		o.messages = 200_000
		if o.quick {
			o.messages = 20_000
		}
	}
	if o.rssTopics == 0 {
		o.rssTopics = 10_000
		if o.quick {
			o.rssTopics = 1_000
		}
	}
	if o.quick {
		o.verify = true
		if o.runs == 0 {
			o.runs = 1
		}
	}
	if o.messages < 100 || o.rssTopics < 1 || o.runs < 0 {
		return o, fmt.Errorf("-messages must be >= 100, -rss-topics >= 1 and -runs >= 0")
	}
	if rows != "" {
		o.rows = make(map[string]bool)
		known := make(map[string]bool)
		for _, g := range groupNames() {
			known[g] = true
		}
		for _, r := range strings.Split(rows, ",") {
			r = strings.TrimSpace(r)
			if !known[r] {
				return o, fmt.Errorf("-rows: unknown row %q (known: %s)", r, strings.Join(groupNames(), ","))
			}
			o.rows[r] = true
		}
	}
	return o, nil
}

func defaultOut() string {
	return filepath.Join(dstest.Dir(), "..", "bench-results", "latest.md")
}

// run is the whole command; the test calls it in-process.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	srv, err := dstest.Start(dstest.Options{})
	if err != nil {
		return err
	}
	defer srv.Stop()

	b := newBench(srv, o)
	defer b.stopFileServer()
	if o.peers != nil {
		return runPeerTable(ctx, b, stdout)
	}
	fmt.Fprintf(stdout, "Benchmarking against %s (pid %d); %s\n", srv.URL, srv.PID(), b.describeMessages())

	results, err := b.runAll(ctx, stdout)
	if err != nil {
		return err
	}
	return writeTable(o.out, renderTable(b.header(), b.jobs, results), stdout)
}

// runPeerTable runs the peer comparison and writes its table next to
// the rows' (peers.md).
func runPeerTable(ctx context.Context, b *bench, stdout io.Writer) error {
	peers, err := b.peerList(b.opts.peers, b.opts.peerAddrs)
	if err != nil {
		return err
	}
	runs := b.opts.runs
	if runs == 0 {
		runs = 3
	}
	table, err := b.runPeers(ctx, peers, b.opts.peerMessages, runs, stdout)
	if err != nil {
		return err
	}
	out := b.opts.out
	if out != "" {
		out = filepath.Join(filepath.Dir(out), "peers.md")
	}
	return writeTable(out, table, stdout)
}

// writeTable prints the table and writes it to out (empty: nowhere).
func writeTable(out, table string, stdout io.Writer) error {
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, table)
	if out != "" {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return fmt.Errorf("write table: %w", err)
		}
		if err := os.WriteFile(out, []byte(table), 0o644); err != nil {
			return fmt.Errorf("write table: %w", err)
		}
		fmt.Fprintf(stdout, "\nWritten to %s\n", out)
	}
	return nil
}
