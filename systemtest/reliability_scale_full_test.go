//go:build reliability

package systemtest

// The full fault suite: make test_reliability.
const (
	reliabilityWriters  = 32
	reliabilityMessages = 100_000
	reliabilityCrashes  = 10
)
