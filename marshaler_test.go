package durablestreams

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMarshalersRefuseNilMessage: Marshal of a nil message is a typed
// error, ErrNilMessage in a *MarshalError, not a panic.
func TestMarshalersRefuseNilMessage(t *testing.T) {
	for _, m := range []Marshaler{
		JSONMarshaler{}, &JSONMarshaler{ExactPayload: true}, RawJSONMarshaler{},
		CloudEventsMarshaler{Source: "/s"}, FramedMarshaler{}, LinesMarshaler{},
	} {
		var data []byte
		var err error
		require.NotPanics(t, func() { data, err = m.Marshal("t", nil) }, "%T", m)
		require.ErrorIs(t, err, ErrNilMessage, "%T", m)
		var merr *MarshalError
		require.True(t, errors.As(err, &merr), "%T", m)
		assert.NotEmpty(t, merr.Marshaler, "%T", m)
		assert.Nil(t, data, "%T", m)
	}
}
