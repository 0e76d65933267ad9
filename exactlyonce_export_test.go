package durablestreams

import "context"

// InputEpoch is, for the external tests, the lease epoch of the input
// whose delivery ctx belongs to (-1 for none): the crash tests write it
// into each output to check that no former owner wrote after a newer one.
func InputEpoch(ctx context.Context) int64 {
	if t := txnOf(ctx); t != nil {
		return t.src.lease.Epoch()
	}
	return -1
}
