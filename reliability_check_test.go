package durablestreams_test

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
	acked  map[writeID]bool
	failed map[writeID]error
	sent   int
}

type writeID struct{ G, I int }

func newHistory() *history {
	return &history{acked: make(map[writeID]bool), failed: make(map[writeID]error)}
}

func (h *history) payload(g, i int) []byte { return fmt.Appendf(nil, `{"g":%d,"i":%d}`, g, i) }

func (h *history) record(g, i int, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sent++
	if err != nil {
		h.failed[writeID{g, i}] = err
		return
	}
	h.acked[writeID{g, i}] = true
}

// check reads the stream's payloads (from JSONMarshaler envelopes) and
// fails the test on any lost acknowledged write, duplicate or reordering.
func (h *history) check(t *testing.T, payloads [][]byte) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()

	seen := make(map[writeID]int)
	last := make(map[int]int)
	var duplicates, outOfOrder, foundFailed int
	for _, p := range payloads {
		var w writeID
		require.NoError(t, json.Unmarshal(p, &w), "payload %q", p)
		seen[w]++
		if seen[w] > 1 {
			duplicates++
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
	for w := range h.acked {
		if seen[w] == 0 {
			lost++
		}
	}
	t.Logf("sent %d, acknowledged %d, failed %d (of which found in the stream %d), found %d, lost %d, duplicates %d, out of order %d",
		h.sent, len(h.acked), len(h.failed), foundFailed, len(payloads), lost, duplicates, outOfOrder)
	for w, err := range h.failed {
		t.Logf("first failure, writer %d message %d: %v", w.G, w.I, err)
		break
	}
	assert.Zero(t, lost, "acknowledged messages missing from the stream")
	assert.Zero(t, duplicates, "messages written twice")
	assert.Zero(t, outOfOrder, "messages out of their writer's order")
	assert.Equal(t, h.sent, len(h.acked)+len(h.failed), "every message is acknowledged or reported failed")
}
