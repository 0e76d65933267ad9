//go:build stress

package systemtest

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
)

// TestPubSubStress runs Watermill's universal suite many times in parallel
// (make test_stress).
func TestPubSubStress(t *testing.T) {
	f := newPubSubFactory(t)
	tests.TestPubSubStressTest(t, pubSubFeatures,
		func(t *testing.T) (message.Publisher, message.Subscriber) { return f.withGroup(t, "default") },
		f.withGroup,
	)
}
