package durablestreams

import (
	"encoding/json"
	"testing"

	"github.com/durablestreams/watermill-durablestreams/internal/reader"
	"github.com/durablestreams/watermill-durablestreams/internal/subscription"
)

// TestSubscriptionTakesPublicValues: internal/subscription takes where
// to go on from a lost position as a reader offset, and CommitEveryAck by
// value; a group stores its Pos as it stored the root's position with N.
func TestSubscriptionTakesPublicValues(t *testing.T) {
	for lost, from := range map[PositionLost]string{
		PositionLostFromStart: reader.OffsetBeginning,
		PositionLostFromTail:  reader.OffsetNow,
		PositionLostStop:      "",
	} {
		if got := lost.goOnFrom(); got != from {
			t.Errorf("PositionLost %d goes on from %q, want %q", lost, got, from)
		}
	}
	if CommitEveryAck != subscription.EveryAck {
		t.Errorf("CommitEveryAck %s is %s inside", CommitEveryAck, subscription.EveryAck)
	}
	raw, err := json.Marshal(subscription.Pos{Offset: "7_1", Skip: 2, N: 9})
	if err != nil || string(raw) != `{"offset":"7_1","skip":2,"n":9}` {
		t.Errorf("stored position %s (%v)", raw, err)
	}
}
