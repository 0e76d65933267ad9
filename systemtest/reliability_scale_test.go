//go:build !reliability

package systemtest

// The short form of the fault suite, part of every `go test`.
const (
	reliabilityWriters  = 32
	reliabilityMessages = 32 * 150
	reliabilityCrashes  = 3
)
