package protocol

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/retry"
)

// TestCreateAnswer has a row for every answer to a create (PROTOCOL.md
// §5.1) and for those only another kind of server gives.
func TestCreateAnswer(t *testing.T) {
	withOffset := http.Header{HeaderNextOffset: {"0000_0000"}}
	for _, r := range []struct {
		name   string
		status int
		header http.Header
		want   createMeaning
	}{
		{"201 created", 201, withOffset, createOK},
		{"200 exists with the same configuration", 200, withOffset, createOK},
		{"204 with the tail", 204, withOffset, createOK},
		{"409 exists with another configuration", 409, nil, createConflict},
		{"200 without Stream-Next-Offset: a web server's answer to anything", 200, nil, createNoEndpoint},
		{"201 without Stream-Next-Offset", 201, nil, createNoEndpoint},
		{"204 without Stream-Next-Offset", 204, nil, createNoEndpoint},
		{"404: no stream route (§5.1 gives 404 only for a fork)", 404, nil, createNoEndpoint},
		{"405: PUT not allowed there", 405, nil, createNoEndpoint},
		{"400 bad headers", 400, nil, createOther},
		{"429 rate limited", 429, nil, createOther},
		{"503", 503, nil, createOther},
	} {
		assert.Equal(t, r.want, createAnswer(r.status, r.header), r.name)
	}
}

// notAStreamServer is a fake for what the reference server cannot be: a
// web server that is not a Durable Streams endpoint, answering every
// request with status and no protocol header.
func notAStreamServer(t *testing.T, status int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestCreateOnANonStreamEndpointIsNamedSo: a create that a web server
// answers 200 or 404 fails at once with ErrNotStreamEndpoint naming the
// URL, not as a missing stream (a 404 to a PUT is not one), and it is not
// retried; a HEAD there says the same.
func TestCreateOnANonStreamEndpointIsNamedSo(t *testing.T) {
	for _, status := range []int{200, 404} {
		url := notAStreamServer(t, status) + "/orders"
		c := &Client{Retry: retry.DefaultPolicy()}
		err := c.CreateStream(t.Context(), url, StreamOptions{ContentType: ContentTypeJSON})
		require.ErrorIs(t, err, ErrNotStreamEndpoint, "status %d", status)
		require.NotErrorIs(t, err, ErrStreamNotFound)
		require.NotErrorIs(t, err, ErrRetriesExhausted, "not retried")
		require.ErrorContains(t, err, "PUT "+url+" answered")
	}
	url := notAStreamServer(t, 200) + "/orders"
	_, err := (&Client{}).ContentType(t.Context(), url)
	require.ErrorIs(t, err, ErrNotStreamEndpoint)
	_, _, err = (&Client{}).Tail(t.Context(), url)
	require.ErrorIs(t, err, ErrNotStreamEndpoint)
}
