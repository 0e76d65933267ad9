package durablestreams

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

func TestPublicErrorGivesInternalErrorsTheirPublicTypes(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		is   []error
		as   func(error) bool
	}{
		{
			name: "404",
			err:  fmt.Errorf("append: %w", &protocol.HTTPError{Method: http.MethodPost, URL: "http://h/s", StatusCode: 404}),
			is:   []error{ErrStreamNotFound},
			as: func(err error) bool {
				var h *HTTPError
				return errors.As(err, &h) && h.StatusCode == 404 && h.URL == "http://h/s"
			},
		},
		{
			name: "stale epoch",
			err:  fmt.Errorf("append: %w", &protocol.StaleEpochError{ServerEpoch: 9, Epoch: 3}),
			is:   []error{ErrStaleEpoch},
			as: func(err error) bool {
				var s *StaleEpochError
				return errors.As(err, &s) && s.ServerEpoch == 9 && s.Epoch == 3
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub := publicError(tc.err)
			require.Equal(t, tc.err.Error(), pub.Error(), "the message is kept")
			for _, target := range tc.is {
				require.ErrorIs(t, pub, target)
			}
			require.True(t, tc.as(pub))
			require.Same(t, pub, publicError(pub), "applied once")
		})
	}
	plain := errors.New("plain")
	require.Same(t, plain, publicError(plain))
	require.NoError(t, publicError(nil))
}
