// Package dstest runs the pinned Durable Streams reference server for tests,
// examples and benchmarks, and drives its fault-injection endpoint.
//
// The server is the npm package @durable-streams/server, installed from the
// lock file in testserver/ (npm ci --prefix testserver). Each server is a
// node child process that exits when this process exits, however it exits:
// it watches its stdin, whose only writer is us.
//
// The package is internal, and the examples do not use it: it needs an npm
// install that go get cannot provide, and its faults and restarts are test
// machinery. The README's Development section says how users test instead.
package dstest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotInstalled is returned when the server's npm packages are missing.
var ErrNotInstalled = errors.New("dstest: durable streams test server is not installed")

// readyTimeout bounds how long a server may take to print its ready line;
// a loaded 2-core CI machine can take several seconds to start node.
const readyTimeout = 30 * time.Second

// Options configure a server started by Start.
type Options struct {
	// DataDir enables the file-backed store (LMDB + append-only logs).
	// Empty means in-memory.
	DataDir string
	// LongPollTimeout is how long the server holds a long-poll with no data.
	// Zero means 2s: short, so tests that tail a stream finish quickly.
	LongPollTimeout time.Duration
	// Port to listen on; zero picks a free one outside the kernel's
	// ephemeral range (see freePort), so that a restart gets it back.
	Port int
}

// Server is a running (or stopped) reference server.
type Server struct {
	// URL is the base URL, for example http://127.0.0.1:41234.
	URL string

	external bool
	opts     Options

	restarting sync.Mutex // held for a whole Restart

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	// lifeline is the write end of the child's stdin. Holding it keeps the
	// child alive; when this process dies the OS closes it and the child exits.
	lifeline *os.File
	stderr   *tailBuffer
}

// Dir returns the folder holding the launcher and its package-lock.json.
func Dir() string {
	if dir := os.Getenv("DURABLE_STREAMS_TESTSERVER_DIR"); dir != "" {
		return dir
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "testserver"
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "testserver")
}

// Start launches a server and waits until it accepts requests.
func Start(opts Options) (*Server, error) {
	if opts.LongPollTimeout == 0 {
		opts.LongPollTimeout = 2 * time.Second
	}
	if opts.Port != 0 {
		s := &Server{opts: opts}
		if err := s.start(); err != nil {
			return nil, err
		}
		return s, nil
	}
	var err error
	for range 5 {
		opts.Port, err = freePort()
		if err != nil {
			return nil, err
		}
		s := &Server{opts: opts}
		if err = s.start(); err == nil {
			return s, nil
		}
		if !strings.Contains(err.Error(), "EADDRINUSE") {
			return nil, err
		}
	}
	return nil, err
}

// start launches the server process and waits until it says READY, is
// gone, or readyTimeout passes.
func (s *Server) start() error {
	dir := Dir()
	node, args, err := s.command(dir)
	if err != nil {
		return err
	}

	lifelineR, lifelineW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("dstest: stdin pipe: %w", err)
	}
	stdout, stdoutW, err := os.Pipe()
	if err != nil {
		_ = lifelineR.Close()
		_ = lifelineW.Close()
		return fmt.Errorf("dstest: stdout pipe: %w", err)
	}

	cmd := exec.Command(node, args...)
	cmd.Dir = dir
	cmd.Stdin = lifelineR
	cmd.Stdout = stdoutW
	stderr := &tailBuffer{max: 16 << 10}
	cmd.Stderr = stderr
	startErr := cmd.Start()
	_ = lifelineR.Close()
	_ = stdoutW.Close()
	if startErr != nil {
		_ = lifelineW.Close()
		_ = stdout.Close()
		return fmt.Errorf("dstest: start node: %w", startErr)
	}

	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()

	ready := readReady(stdout)
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case base := <-ready:
		s.mu.Lock()
		s.URL, s.cmd, s.exited, s.lifeline, s.stderr = base, cmd, exited, lifelineW, stderr
		s.pinPortLocked(base)
		s.mu.Unlock()
		return nil
	case <-exited:
		_ = lifelineW.Close()
		return fmt.Errorf("dstest: server exited before it was ready: %s", stderr.String())
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-exited
		_ = lifelineW.Close()
		return fmt.Errorf("dstest: server not ready after %s: %s", readyTimeout, stderr.String())
	}
}

// command is the node command line that runs the launcher in dir with
// the server's options.
func (s *Server) command(dir string) (string, []string, error) {
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@durable-streams", "server", "package.json")); err != nil {
		return "", nil, fmt.Errorf("%w: run `npm ci --prefix %s` (needs Node.js >= 18 and npm)", ErrNotInstalled, dir)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return "", nil, fmt.Errorf("dstest: node not found on PATH (install Node.js >= 18): %w", err)
	}
	args := []string{
		filepath.Join(dir, "server.mjs"),
		"--watch-stdin",
		"--port", strconv.Itoa(s.opts.Port),
		"--long-poll-ms", strconv.FormatInt(s.opts.LongPollTimeout.Milliseconds(), 10),
	}
	if s.opts.DataDir != "" {
		args = append(args, "--data-dir", s.opts.DataDir)
	}
	return node, args, nil
}

// readReady reads the launcher's stdout until it closes, and sends the
// base URL of its READY line.
func readReady(stdout *os.File) <-chan string {
	ready := make(chan string, 1)
	go func() {
		defer stdout.Close()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if base, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				ready <- strings.TrimSpace(base)
				break
			}
		}
		// Keep draining so the child never blocks writing to a full pipe.
		_, _ = io.Copy(io.Discard, stdout)
	}()
	return ready
}

// pinPortLocked pins the port of base when the server chose it, so that
// a restart comes back at the same URL.
func (s *Server) pinPortLocked(base string) {
	if s.opts.Port != 0 {
		return
	}
	if u, err := url.Parse(base); err == nil {
		if _, port, err := net.SplitHostPort(u.Host); err == nil {
			s.opts.Port, _ = strconv.Atoi(port)
		}
	}
}

// External reports whether the server is one this package did not start
// (DURABLE_STREAMS_URL), which cannot inject faults or restart.
func (s *Server) External() bool { return s.external }

// StreamURL returns the URL of the stream at path under /v1/stream/.
func (s *Server) StreamURL(path string) string {
	return strings.TrimRight(s.URL, "/") + "/v1/stream/" + strings.TrimLeft(path, "/")
}

// Stop asks the server to shut down, and kills it if it does not within 5s.
func (s *Server) Stop() error { return s.stop(syscall.SIGTERM) }

// Kill ends the server with SIGKILL, as a crash would: nothing is flushed.
func (s *Server) Kill() error { return s.stop(syscall.SIGKILL) }

func (s *Server) stop(sig syscall.Signal) error {
	s.mu.Lock()
	cmd, exited, lifeline := s.cmd, s.exited, s.lifeline
	s.cmd, s.lifeline = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	defer lifeline.Close()
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("dstest: signal server: %w", err)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("dstest: server ignored %s for 5s and was killed", sig)
	}
}

// Restart stops the server (with SIGKILL when crash is true) and starts it
// again on the same port and data directory. Restarts that overlap run one
// after the other (two at once would both listen on the port).
func (s *Server) Restart(crash bool) error {
	if s.external {
		return errors.New("dstest: cannot restart an external server")
	}
	s.restarting.Lock()
	defer s.restarting.Unlock()
	var err error
	if crash {
		err = s.Kill()
	} else {
		err = s.Stop()
	}
	if err != nil {
		return err
	}
	return s.start()
}

// Running reports whether the server process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// PID returns the server's process id, or 0 when it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Ping checks that the server answers HTTP.
func (s *Server) Ping(ctx context.Context) error {
	req, err := newRequest(ctx, "OPTIONS", s.URL+"/", nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("dstest: ping %s: %w", s.URL, err)
	}
	_ = resp.Body.Close()
	return nil
}

// tailBuffer keeps the last max bytes written to it, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.buf.String())
}
