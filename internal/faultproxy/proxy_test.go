package faultproxy

import (
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

func TestMain(m *testing.M) { dstest.Main(m) }

func do(t *testing.T, c *http.Client, method, url, body string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

func TestLostResponseWasApplied(t *testing.T) {
	stream := dstest.StreamURL(t) // starts the shared server first: its goroutines stay
	before := runtime.NumGoroutine()
	p, err := New(stream)
	require.NoError(t, err)
	client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	viaProxy := p.URL(stream)

	resp, _, err := do(t, client, http.MethodPut, viaProxy, "")
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "an unarmed proxy relays")

	p.LoseResponses(1)
	_, _, err = do(t, client, http.MethodPost, viaProxy, `{"n":1}`)
	require.Error(t, err, "the armed proxy must lose the response")
	require.Equal(t, 1, p.Lost())

	resp, body, err := do(t, client, http.MethodGet, viaProxy+"?offset=-1", "")
	require.NoError(t, err, "only one response is lost")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.JSONEq(t, `[{"n":1}]`, body, "the server applied the request whose response was lost")

	client.CloseIdleConnections()
	require.NoError(t, p.Close())
	requireNoLeak(t, before)
}

func TestCloseCutsOpenConnections(t *testing.T) {
	stream := dstest.StreamURL(t)
	p, err := New(stream)
	require.NoError(t, err)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	_, _, err = do(t, client, http.MethodPut, p.URL(stream), "")
	require.NoError(t, err)
	// The keep-alive connection is still open; Close must not wait for the client.
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs on an open client connection")
	}
}

func requireNoLeak(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines left: %d > %d\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
