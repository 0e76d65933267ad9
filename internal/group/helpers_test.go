package group

import (
	"context"
	"encoding/json"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

func TestMain(m *testing.M) {
	if base := os.Getenv(childEnv); base != "" {
		os.Exit(runChild(base))
	}
	dstest.Main(m)
}

// fast is a configuration for tests: a session of 2 s with heartbeats
// every 200 ms.
func fast(_ testing.TB, base, topic, member string, streams ...string) Config {
	return Config{
		Client:            &protocol.Client{HTTP: protocol.NewHTTPClient(8), RequestTimeout: 5 * time.Second},
		BaseURL:           base,
		Group:             "g",
		Topic:             topic,
		Streams:           streams,
		MemberID:          member,
		SessionTimeout:    2 * time.Second,
		HeartbeatInterval: 200 * time.Millisecond,
		Margin:            400 * time.Millisecond,
	}
}

// testBase is a base URL of this test's own on the shared server.
func testBase(t testing.TB) string {
	return dstest.Shared(t).StreamURL(dstest.StreamPath(t))
}

func join(t *testing.T, cfg Config) *Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := Join(ctx, cfg)
	if err != nil {
		t.Fatalf("join %s: %v", cfg.MemberID, err)
	}
	t.Cleanup(func() { leave(t, m) })
	return m
}

func leave(t *testing.T, m *Member) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Leave(ctx); err != nil {
		t.Errorf("leave %s: %v", m.ID(), err)
	}
}

// board is what the consumers of a test hold: which member has which
// stream, and every change, for the assertions.
type board struct {
	mu      sync.Mutex
	owner   map[string]string
	changed chan struct{}
	// overlap counts moments two members held one stream.
	overlap int
}

func newBoard() *board {
	return &board{owner: make(map[string]string), changed: make(chan struct{}, 1000)}
}

func (b *board) take(stream, member string) {
	b.mu.Lock()
	if o, ok := b.owner[stream]; ok && o != member {
		b.overlap++
	}
	b.owner[stream] = member
	b.mu.Unlock()
	b.changed <- struct{}{}
}

func (b *board) drop(stream, member string) {
	b.mu.Lock()
	if b.owner[stream] == member {
		delete(b.owner, stream)
	}
	b.mu.Unlock()
	b.changed <- struct{}{}
}

func (b *board) snapshot() map[string]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]string, len(b.owner))
	for k, v := range b.owner {
		out[k] = v
	}
	return out
}

// waitFor waits until cond holds on the board, or fails after d.
func (b *board) waitFor(t *testing.T, d time.Duration, what string, cond func(map[string]string) bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for !cond(b.snapshot()) {
		select {
		case <-b.changed:
		case <-deadline.C:
			t.Fatalf("after %v: %s; owners %v", d, what, b.snapshot())
		}
	}
}

// consume plays a consumer: it records each lease on the board, stores a
// position naming the member, and on revocation releases the stream. It
// returns when the member has left and every lease ended.
func consume(t *testing.T, m *Member, b *board) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for l := range m.Assignments() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b.take(l.Stream(), m.ID())
				pos := json.RawMessage(`"` + m.ID() + `"`)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := l.Store(ctx, pos); err != nil {
					t.Logf("%s store %s: %v", m.ID(), l.Stream(), err)
				}
				<-l.Done()
				b.drop(l.Stream(), m.ID())
				select {
				case <-l.Revoked():
					if err := l.Release(ctx, pos); err != nil {
						t.Logf("%s release %s: %v", m.ID(), l.Stream(), err)
					}
				default:
				}
			}()
		}
	}()
	t.Cleanup(func() {
		leave(t, m) // cleanups run last-in first-out: leave before waiting
		wg.Wait()
	})
	return &wg
}

// readOwnerRecords reads every record of an ownership stream that the
// group would take in.
func readOwnerRecords(ctx context.Context, c *protocol.Client, policy retry.Policy, url string) ([]ownerRecord, error) {
	recs, _, _, err := readRecords(ctx, c, policy, url, func(ownerRecord) string { return "" })
	return recs, err
}

// firstLease is m's first assignment, within 5 s.
func firstLease(t *testing.T, m *Member) *Lease {
	t.Helper()
	select {
	case l := <-m.Assignments():
		return l
	case <-time.After(5 * time.Second):
		t.Fatalf("%s got no lease", m.cfg.MemberID)
		return nil
	}
}
