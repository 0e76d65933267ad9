package dstest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { Main(m) }

func do(t *testing.T, method, url, contentType, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func TestRoundTrip(t *testing.T) {
	stream := StreamURL(t)

	resp, _ := do(t, http.MethodPut, stream, "application/json", "")
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	resp, _ = do(t, http.MethodPost, stream, "application/json", `[{"n":1},{"n":2}]`)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.NotEmpty(t, resp.Header.Get("Stream-Next-Offset"))

	resp, body := do(t, http.MethodGet, stream+"?offset=-1", "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.JSONEq(t, `[{"n":1},{"n":2}]`, body)
}

func TestInjectedFaultIsSeenAndCleared(t *testing.T) {
	srv := Faults(t)
	stream := srv.StreamURL(StreamPath(t))
	resp, _ := do(t, http.MethodPut, stream, "application/json", "")
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	require.NoError(t, srv.InjectFault(t.Context(), Fault{Path: stream, Status: 503, Count: 5, RetryAfter: 2, Method: "GET"}))
	resp, _ = do(t, http.MethodGet, stream+"?offset=-1", "", "")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "2", resp.Header.Get("Retry-After"))

	// The rule is per method: a POST passes.
	resp, _ = do(t, http.MethodPost, stream, "application/json", `{"n":1}`)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)

	require.NoError(t, srv.ClearFaults(t.Context()))
	resp, body := do(t, http.MethodGet, stream+"?offset=-1", "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.JSONEq(t, `[{"n":1}]`, body)
}

func TestInjectedDropConnection(t *testing.T) {
	srv := Faults(t)
	stream := srv.StreamURL(StreamPath(t))
	require.NoError(t, srv.InjectFault(t.Context(), Fault{Path: stream, DropConnection: true}))
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, stream, nil)
	require.NoError(t, err)
	_, err = http.DefaultClient.Do(req)
	require.Error(t, err)
}

func TestRestartKeepsFileBackedData(t *testing.T) {
	srv := Restartable(t)
	stream := srv.StreamURL(StreamPath(t))
	resp, _ := do(t, http.MethodPut, stream, "application/json", "")
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	resp, _ = do(t, http.MethodPost, stream, "application/json", `{"n":1}`)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)

	before := srv.URL
	require.NoError(t, srv.Restart(false))
	require.Equal(t, before, srv.URL, "a restarted server keeps its URL")

	resp, body := do(t, http.MethodGet, stream+"?offset=-1", "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.JSONEq(t, `[{"n":1}]`, body)
}

func TestStartReportsMissingInstall(t *testing.T) {
	t.Setenv("DURABLE_STREAMS_TESTSERVER_DIR", t.TempDir())
	_, err := Start(Options{})
	require.ErrorIs(t, err, ErrNotInstalled)
	require.Contains(t, err.Error(), "npm ci --prefix")
}

// TestServerDiesWithKilledParent runs this test binary as a child that starts
// a server, then SIGKILLs the child: the server must exit on its own.
func TestServerDiesWithKilledParent(t *testing.T) {
	SkipIfExternal(t, "starts servers of its own")
	if os.Getenv("DSTEST_CHILD") == "1" {
		s, err := Start(Options{})
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		fmt.Println("PID", s.PID())
		select {} // wait to be killed
	}

	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestServerDiesWithKilledParent$")
	cmd.Env = append(os.Environ(), "DSTEST_CHILD=1")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	line := make([]byte, 64)
	n, err := io.ReadAtLeast(out, line, 5)
	require.NoError(t, err)
	fields := strings.Fields(string(line[:n]))
	require.Len(t, fields, 2, "child said %q", line[:n])
	require.Equal(t, "PID", fields[0], "child said %q", line[:n])
	pid, err := strconv.Atoi(fields[1])
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(pid, 0), "server should run while its parent does")

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()

	require.Eventually(t, func() bool {
		return syscall.Kill(pid, 0) != nil
	}, 10*time.Second, 20*time.Millisecond, "server %d outlived its killed parent", pid)
}

func TestPingAndStop(t *testing.T) {
	srv := Private(t, Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	require.NoError(t, srv.Ping(ctx))
	require.True(t, srv.Running())
	require.NoError(t, srv.Stop())
	require.False(t, srv.Running())
	require.Error(t, srv.Ping(ctx))
}

func TestOverlappingRestartsRunOneAfterTheOther(t *testing.T) {
	srv := Private(t, Options{})
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- srv.Restart(false) }()
	}
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)
	require.NoError(t, srv.Ping(t.Context()))
}
