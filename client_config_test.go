package durablestreams

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNewClientCopiesEveryRetryPolicyField: newClient holds the one copy of
// the public RetryPolicy into the internal one; a field added to the public
// type and not copied would be silently ignored.
func TestNewClientCopiesEveryRetryPolicyField(t *testing.T) {
	var p RetryPolicy
	pv := reflect.ValueOf(&p).Elem()
	for i := range pv.NumField() {
		pv.Field(i).SetInt(int64(i + 1)) // int and time.Duration alike
	}
	c, _ := ClientConfig{RetryPolicy: p}.newClient(false, nil)
	t.Cleanup(c.HTTP.CloseIdleConnections)
	got := reflect.ValueOf(c.Retry)
	for i := range pv.NumField() {
		name := pv.Type().Field(i).Name
		f := got.FieldByName(name)
		require.True(t, f.IsValid(), "protocol.RetryPolicy has no %s", name)
		require.Equal(t, int64(i+1), f.Int(), "%s is not copied", name)
	}
}
