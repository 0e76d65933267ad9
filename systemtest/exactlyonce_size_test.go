//go:build !reliability

package systemtest

// Sizes of the exactly-once crash tests in the default run; the
// reliability build tag runs the full size.
const (
	eoRouterInputs = 10_000
	eoCQRSInputs   = 5_000
)
