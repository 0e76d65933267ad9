package durablestreams

import (
	"encoding/json"
	"testing"

	"github.com/durablestreams/watermill-durablestreams/internal/subscription"
)

// TestSubscriptionMirrorsPublicValues: internal/subscription takes the
// public PositionLost and CommitEveryAck by value, and a group stores its
// Pos as it stored the root's position with N.
func TestSubscriptionMirrorsPublicValues(t *testing.T) {
	for public, internal := range map[PositionLost]subscription.PositionLost{
		PositionLostFromStart: subscription.LostFromStart,
		PositionLostFromTail:  subscription.LostFromTail,
		PositionLostStop:      subscription.LostStop,
	} {
		if subscription.PositionLost(public) != internal {
			t.Errorf("PositionLost %d is %d inside", public, internal)
		}
	}
	if CommitEveryAck != subscription.EveryAck {
		t.Errorf("CommitEveryAck %s is %s inside", CommitEveryAck, subscription.EveryAck)
	}
	raw, err := json.Marshal(subscription.Pos{Position: subscription.Position(Position{Offset: "7_1", Skip: 2}), N: 9})
	if err != nil || string(raw) != `{"offset":"7_1","skip":2,"n":9}` {
		t.Errorf("stored position %s (%v)", raw, err)
	}
}
