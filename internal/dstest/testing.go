package dstest

import (
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
)

// EnvURL names an external server to test against instead of a local one,
// for example a production Caddy-based Durable Streams server.
const EnvURL = "DURABLE_STREAMS_URL"

var (
	sharedOnce   sync.Once
	sharedServer *Server
	sharedErr    error

	startedMu sync.Mutex
	started   []*Server
)

// Shared returns the in-memory server shared by every test of this test
// binary, starting it on first use. With DURABLE_STREAMS_URL set it returns
// that server instead. It fails the test when no server can be had.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	sharedOnce.Do(func() {
		if base := os.Getenv(EnvURL); base != "" {
			sharedServer = &Server{URL: strings.TrimRight(base, "/"), external: true}
			return
		}
		sharedServer, sharedErr = Start(Options{})
		if sharedErr == nil {
			track(sharedServer)
		}
	})
	if sharedErr != nil {
		tb.Fatalf("durable streams server: %v", sharedErr)
	}
	return sharedServer
}

// Private starts a server for this test alone, stopped when the test ends.
// With a DataDir the server is file-backed and survives Restart. Tests that
// need one skip against an external server.
func Private(tb testing.TB, opts Options) *Server {
	tb.Helper()
	SkipIfExternal(tb, "needs a server of its own")
	s, err := Start(opts)
	if err != nil {
		tb.Fatalf("durable streams server: %v", err)
	}
	track(s)
	tb.Cleanup(func() { _ = s.Stop() })
	return s
}

// Restartable starts a private file-backed server in a temporary directory.
func Restartable(tb testing.TB) *Server {
	tb.Helper()
	SkipIfExternal(tb, "restarts the server")
	return Private(tb, Options{DataDir: tb.TempDir()})
}

// Faults starts an in-memory server of this test's own, so that the faults
// it injects touch no other test. It skips against an external server.
func Faults(tb testing.TB) *Server {
	tb.Helper()
	SkipIfExternal(tb, "injects faults")
	return Private(tb, Options{})
}

// SkipIfExternal skips the test when DURABLE_STREAMS_URL is set.
func SkipIfExternal(tb testing.TB, why string) {
	tb.Helper()
	if os.Getenv(EnvURL) != "" {
		tb.Skipf("skipped against the external server in %s: the test %s", EnvURL, why)
	}
}

var unsafePath = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// StreamPath returns a stream path unique to this test and call.
func StreamPath(tb testing.TB) string {
	name := strings.Trim(unsafePath.ReplaceAllString(tb.Name(), "-"), "-.")
	if len(name) > 60 {
		name = name[:60]
	}
	return "test/" + name + "-" + uuid.NewString()[:8]
}

// StreamURL returns the URL of a fresh stream on the shared server, unique
// to this test and call. The stream is not created.
func StreamURL(tb testing.TB) string {
	tb.Helper()
	return Shared(tb).StreamURL(StreamPath(tb))
}

// Main runs the tests and then stops every server this package started.
// Use it from TestMain: func TestMain(m *testing.M) { dstest.Main(m) }.
// Servers die with the test binary even without it; Main only makes the
// ordinary exit tidy.
func Main(m *testing.M) {
	code := m.Run()
	StopAll()
	os.Exit(code)
}

// StopAll stops every server started through this package.
func StopAll() {
	startedMu.Lock()
	servers := started
	started = nil
	startedMu.Unlock()
	for _, s := range servers {
		_ = s.Stop()
	}
}

func track(s *Server) {
	startedMu.Lock()
	started = append(started, s)
	startedMu.Unlock()
}
