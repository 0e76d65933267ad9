package protocol

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

func TestIsJSON(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json":                 true,
		"Application/JSON; charset=utf-8":  true,
		" application/json ":               true,
		"application/json-seq":             false,
		"text/plain":                       false,
		"application/octet-stream":         false,
		"application/json;;broken=":        true,
		"":                                 false,
		"application/vnd.api+json":         false,
		"APPLICATION/JSON;CHARSET=\"UTF-8": true,
	} {
		assert.Equal(t, want, IsJSON(ct), "%q", ct)
	}
}

func TestRetryAfter(t *testing.T) {
	h := http.Header{}
	assert.Zero(t, RetryAfter(h, time.Minute))
	h.Set("Retry-After", "2")
	assert.Equal(t, 2*time.Second, RetryAfter(h, time.Minute))
	h.Set("Retry-After", "0.5")
	assert.Equal(t, 500*time.Millisecond, RetryAfter(h, time.Minute))
	h.Set("Retry-After", "99999")
	assert.Equal(t, time.Minute, RetryAfter(h, time.Minute))
	h.Set("Retry-After", "-3")
	assert.Zero(t, RetryAfter(h, time.Minute))
	h.Set("Retry-After", "soon")
	assert.Zero(t, RetryAfter(h, time.Minute))
	h.Set("Retry-After", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
	assert.Equal(t, time.Minute, RetryAfter(h, time.Minute))
}

func TestRedactURL(t *testing.T) {
	assert.Equal(t, "https://host/v1/stream/a", RedactURL("https://user:pw@host/v1/stream/a?token=x#f"))
	assert.Equal(t, "http://host:1/a@b", RedactURL("http://host:1/a@b"))
	assert.Equal(t, "not a url", RedactURL("not a url"))
}

// TestRetryable: failures without an answer. An error answer is never
// retryable by its error: its status decides (TestStatusTry).
func TestRetryable(t *testing.T) {
	for _, code := range []int{503, 429, 400, 404} {
		assert.False(t, Retryable(answer(code)), "%d", code)
	}
	assert.True(t, Retryable(fmt.Errorf("x: %w", syscall.ECONNRESET)))
	assert.True(t, Retryable(io.ErrUnexpectedEOF))
	assert.True(t, Retryable(context.DeadlineExceeded))
	assert.False(t, Retryable(context.Canceled))
	assert.False(t, Retryable(errors.New("other")))
	assert.True(t, Retryable(fmt.Errorf("Post \"http://h/s\": %w", errors.New("http: server closed idle connection"))))
}

func TestAnswerErrorMatchesSentinels(t *testing.T) {
	assert.ErrorIs(t, answer(404), ErrStreamNotFound)
	assert.ErrorIs(t, answer(410), ErrStreamGone)
	assert.NotErrorIs(t, answer(500), ErrStreamNotFound)
	assert.ErrorIs(t, (*Client)(nil).StaleEpochError(3, 1), ErrStaleEpoch)
}

// TestClientBuildsErrorsWithItsConstructors: the root package's types
// are what users see, as they are; StatusTry keeps the status and the
// Retry-After beside them as values.
func TestClientBuildsErrorsWithItsConstructors(t *testing.T) {
	public := errors.New("public")
	c := &Client{
		NewHTTPError: func(method, url string, status int, body string, retryAfter time.Duration) error {
			assert.Equal(t, []any{"PUT", "http://h/s", 503, "busy", time.Second}, []any{method, url, status, body, retryAfter})
			return public
		},
		NewStaleEpochError: func(serverEpoch, epoch int64) error {
			assert.Equal(t, []int64{9, 3}, []int64{serverEpoch, epoch})
			return public
		},
	}
	assert.Same(t, public, c.AnswerError("PUT", "http://h/s", 503, "busy", time.Second))
	try := c.StatusTry("PUT", "http://h/s", 503, "busy", time.Second)
	assert.Same(t, public, try.Err)
	assert.Equal(t, 503, try.Status)
	assert.Equal(t, time.Second, try.RetryAfter)
	assert.Same(t, public, c.StaleEpochError(9, 3))
}

// answer is the error of an answer with status code, as a client without
// the root's constructors builds it.
func answer(code int) error {
	return (&Client{}).AnswerError("POST", "http://h/s", code, "", 0)
}

// TestCreateStreamWithAPassedExpiry: a stream whose expiry has passed is
// refused before any request (the reference server answers such a PUT
// with a 500, which the retries would repeat for minutes): ErrStreamGone,
// at once, and nothing is created.
func TestCreateStreamWithAPassedExpiry(t *testing.T) {
	url := dstest.StreamURL(t)
	c := &Client{HTTP: NewHTTPClient(1), RequestTimeout: 5 * time.Second, Retry: retry.Policy{InitialBackoff: time.Hour, MaxBackoff: time.Hour}}
	t.Cleanup(c.HTTP.CloseIdleConnections)
	err := c.CreateStream(t.Context(), url, StreamOptions{ContentType: ContentTypeJSON, ExpiresAt: time.Now().Add(-time.Second)})
	require.ErrorIs(t, err, ErrStreamGone)
	_, exists, err := c.Tail(t.Context(), url)
	require.NoError(t, err)
	assert.False(t, exists, "the stream was created")
}
