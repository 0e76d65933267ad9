package systemtest

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// history records what each writer sent and what it was told, the way a
// Jepsen checker does: acknowledged writes must be in the stream exactly
// once and in each writer's order; failed ones may or may not be
// (indeterminate), but never twice.
type history struct {
	mu     sync.Mutex
	acked  map[writeID]string // the offset the server acknowledged it with
	failed map[writeID]error
	sent   int

	// pending is each writer's message in flight; crashWindow collects the
	// messages in flight while the server was being killed.
	pending     map[int]int
	crashing    bool
	crashWindow map[writeID]bool
}

type writeID struct{ G, I int }

func newHistory() *history {
	return &history{
		acked:       make(map[writeID]string),
		failed:      make(map[writeID]error),
		pending:     make(map[int]int),
		crashWindow: make(map[writeID]bool),
	}
}

func (h *history) payload(g, i int) []byte { return fmt.Appendf(nil, `{"g":%d,"i":%d}`, g, i) }

// start notes that writer g is about to publish message i.
func (h *history) start(g, i int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pending[g] = i
	if h.crashing {
		h.crashWindow[writeID{g, i}] = true
	}
}

// crash runs kill while noting every message in flight around it.
func (h *history) crash(kill func() error) error {
	h.mu.Lock()
	h.crashing = true
	for g, i := range h.pending {
		h.crashWindow[writeID{g, i}] = true
	}
	h.mu.Unlock()
	err := kill()
	h.mu.Lock()
	h.crashing = false
	h.mu.Unlock()
	return err
}

func (h *history) record(g, i int, offset string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.pending, g)
	h.sent++
	if err != nil {
		h.failed[writeID{g, i}] = err
		return
	}
	h.acked[writeID{g, i}] = offset
}

// check reads the stream's payloads (from JSONMarshaler envelopes) and
// fails the test on any lost acknowledged write, duplicate or reordering.
func (h *history) check(t *testing.T, payloads [][]byte) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()

	seen := make(map[writeID]int)
	var report []string
	last := make(map[int]int)
	var duplicates, crashDuplicates, outOfOrder, foundFailed int
	for _, p := range payloads {
		var w writeID
		require.NoError(t, json.Unmarshal(p, &w), "payload %q", p)
		seen[w]++
		if seen[w] > 1 && h.crashWindow[w] {
			crashDuplicates++
			continue
		}
		if seen[w] > 1 {
			duplicates++
			if len(report) < 10 {
				report = append(report, fmt.Sprintf("duplicate: writer %d message %d (acked at offset %q)", w.G, w.I, h.acked[w]))
			}
			continue
		}
		if prev, ok := last[w.G]; ok && w.I <= prev {
			outOfOrder++
		}
		last[w.G] = w.I
		if _, failed := h.failed[w]; failed {
			foundFailed++
		}
	}
	var lost int
	for w, offset := range h.acked {
		if seen[w] == 0 {
			lost++
			if len(report) < 20 {
				report = append(report, fmt.Sprintf("lost: writer %d message %d, acknowledged at offset %q", w.G, w.I, offset))
			}
		}
	}
	for _, line := range report {
		t.Log(line)
	}
	t.Logf("sent %d, acknowledged %d, failed %d (of which found in the stream %d), found %d, lost %d, duplicates %d, out of order %d",
		h.sent, len(h.acked), len(h.failed), foundFailed, len(payloads), lost, duplicates, outOfOrder)
	if crashDuplicates > 0 {
		t.Logf("duplicates written by the server's crash recovery (in flight at a kill -9): %d", crashDuplicates)
	}
	for w, err := range h.failed {
		t.Logf("first failure, writer %d message %d: %v", w.G, w.I, err)
		break
	}
	assert.Zero(t, lost, "acknowledged messages missing from the stream")
	assert.Zero(t, duplicates, "messages written twice")
	assert.Zero(t, outOfOrder, "messages out of their writer's order")
	assert.Equal(t, h.sent, len(h.acked)+len(h.failed), "every message is acknowledged or reported failed")
}
