package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

func TestPeerPayloadIsJSONOfTheSize(t *testing.T) {
	for _, size := range peerPayloads {
		p := peerPayload(size)
		if len(p) != size || !json.Valid(p) {
			t.Errorf("peerPayload(%d) = %q (%d bytes, valid JSON %v)", size, p, len(p), json.Valid(p))
		}
	}
}

func TestRenderPeersRatiosToOursOfTheSameSize(t *testing.T) {
	ours, other := peer{name: "ours"}, peer{name: "other", durability: "fsync per write"}
	key := func(p peer, size int) string { return p.name + "/" + string(rune('0'+size/16)) }
	results := map[string][]peerResult{}
	for _, size := range peerPayloads {
		results[key(ours, size)] = []peerResult{{publish: 100, drain: 200}, {publish: 300, drain: 400}, {publish: 200, drain: 300}}
		results[key(other, size)] = []peerResult{{publish: 50, drain: 600}, {publish: 50, drain: 600}, {publish: 50, drain: 600}}
	}
	table := renderPeers([]peer{ours, other}, []string{"redis: nothing listens"}, results, key, 1000, 3)
	for _, want := range []string{
		"| 16 B | ours | 200 | 1.00× (1.00–1.00) | 300 | 1.00× (1.00–1.00) |",
		"| 256 B | other | 50 | 0.25× (0.17–0.50) | 600 | 2.00× (1.50–3.00) | — | fsync per write |",
		"Skipped redis: nothing listens",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}

// TestPeersQuickRun runs the comparison on a few hundred messages with
// the peers that need no server of their own; the others point at a
// closed port and must be skipped with a hint, not fail the run.
func TestPeersQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the peer comparison against servers of its own")
	}
	dstest.SkipIfExternal(t, "starts its own servers and reads their CPU time")
	closed := closedAddr(t)
	out := filepath.Join(t.TempDir(), "latest.md")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout bytes.Buffer
	err := run(ctx, []string{"-quick", "-peers", "all", "-peer-messages", "200", "-out", out,
		"-redis", closed, "-nats", "nats://" + closed, "-postgres", "postgres://u@" + closed + "/db"}, &stdout)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stdout.String())
	}
	table, err := os.ReadFile(filepath.Join(filepath.Dir(out), "peers.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| 16 B | ours |", "| 64 B | ours-file |", "| 16 B | ours-group |", "| 256 B | ours-file-group |", "| 256 B | gochannel |",
		"Skipped redis: nothing listens on " + closed, "Skipped nats:", "Skipped postgres:", "make bench_peers"} {
		if !strings.Contains(string(table), want) {
			t.Errorf("peer table lacks %q:\n%s", want, table)
		}
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
