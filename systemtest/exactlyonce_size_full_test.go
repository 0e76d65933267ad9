//go:build reliability

package systemtest

// Sizes of the exactly-once crash tests under the reliability build tag.
const (
	eoRouterInputs = 20_000
	eoCQRSInputs   = 10_000
)
