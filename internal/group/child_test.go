package group

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv makes the test binary a group member of its own (a child
// process the test can SIGKILL or SIGSTOP): its value is the base URL.
const childEnv = "GROUP_TEST_CHILD_BASE"

// runChild joins as member "child" on the single stream "t" and, for each
// lease, delivers 1, 2, 3, ... (printing "deliver <n>") and stores each
// after its delivery, checking Valid before each delivery. It prints
// "claimed <epoch>" and "stopped <reason>".
func runChild(base string) int {
	cfg := fast(nil, base, "t", "child", "t")
	m, err := Join(context.Background(), cfg)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	for l := range m.Assignments() {
		fmt.Println("claimed", l.Epoch())
		for n := 1; ; n++ {
			if !l.Valid() {
				fmt.Println("stopped invalid", l.Err())
				break
			}
			fmt.Println("deliver", n)
			if err := l.Store(context.Background(), json.RawMessage(strconv.Itoa(n))); err != nil {
				fmt.Println("stopped store", err)
				break
			}
			time.Sleep(5 * time.Millisecond) // the handler's work
		}
	}
	return 0
}

// child is a running child member and the lines it printed.
type child struct {
	cmd   *exec.Cmd
	lines chan string
}

func startChild(t *testing.T, base string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+base)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, lines: make(chan string, 1<<16)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		for range c.lines {
		}
	})
	return c
}

// await reads lines until one starts with prefix; it returns the last
// "deliver" number seen on the way.
func (c *child) await(t *testing.T, prefix string, within time.Duration, last *int) string {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				t.Fatalf("child ended before %q", prefix)
			}
			if n, found := strings.CutPrefix(line, "deliver "); found {
				*last, _ = strconv.Atoi(n)
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-timeout:
			t.Fatalf("child printed no %q within %v", prefix, within)
		}
	}
}

// drain reads the child's output to its end, or until it has been quiet
// for the given time (a stopped child).
func (c *child) drain(last *int, quiet time.Duration) []string {
	var rest []string
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				return rest
			}
			rest = append(rest, line)
			if n, found := strings.CutPrefix(line, "deliver "); found {
				*last, _ = strconv.Atoi(n)
			}
		case <-time.After(quiet):
			return rest
		}
	}
}

func positionOf(t *testing.T, l *Lease) int {
	t.Helper()
	n, err := strconv.Atoi(string(l.Start()))
	if err != nil {
		t.Fatalf("start position %q: %v", l.Start(), err)
	}
	return n
}

func TestKilledMemberIsReplacedWithoutSkipping(t *testing.T) {
	base := testBase(t)
	c := startChild(t, base)
	var last int
	c.await(t, "claimed", 10*time.Second, &last)
	c.await(t, "deliver 20", 10*time.Second, &last)
	s := join(t, fast(t, base, "t", "standby", "t"))
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	rest := c.drain(&last, 10*time.Second) // to the end of its output (Wait comes after)
	t.Logf("after kill: %d lines, first %q", len(rest), rest[:min(len(rest), 3)])
	var l *Lease
	select {
	case l = <-s.Assignments():
	case <-time.After(3 * s.cfg.SessionTimeout):
		t.Fatal("nobody replaced the killed member")
	}
	t.Logf("replaced %v after SIGKILL (SessionTimeout %v); child delivered %d", time.Since(killed), s.cfg.SessionTimeout, last)
	start := positionOf(t, l)
	// The child stores n right after delivering n: at most the one
	// message in its hands was not stored, and comes again.
	if start != last && start != last-1 {
		t.Fatalf("standby starts after %d, child delivered up to %d: want %d or %d (nothing skipped, at most one again)", start, last, last, last-1)
	}
	if err := l.Release(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

func TestPausedMemberIsFencedAndDeliversNothingMore(t *testing.T) {
	base := testBase(t)
	c := startChild(t, base)
	var last int
	c.await(t, "claimed", 10*time.Second, &last)
	c.await(t, "deliver 20", 10*time.Second, &last)
	s := join(t, fast(t, base, "t", "standby", "t"))
	if err := c.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	c.drain(&last, 200*time.Millisecond) // what it printed before the stop
	beforeStop := last
	var l *Lease
	select {
	case l = <-s.Assignments():
	case <-time.After(3 * s.cfg.SessionTimeout):
		t.Fatal("nobody replaced the paused member")
	}
	start := positionOf(t, l)
	if start != beforeStop && start != beforeStop-1 {
		t.Fatalf("standby starts after %d, child delivered up to %d before the pause", start, beforeStop)
	}
	if err := c.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped := c.await(t, "stopped", 10*time.Second, &last)
	t.Logf("resumed child: %q", stopped)
	if last != beforeStop {
		t.Fatalf("resumed child delivered %d after its pause (up to %d before)", last-beforeStop, beforeStop)
	}
	// It stored nothing either: every record after the standby's claim is
	// the standby's.
	recs, err := readOwnerRecords(context.Background(), s.cfg.Client, s.cfg.RetryPolicy, s.cfg.ownerURL("t"))
	if err != nil {
		t.Fatal(err)
	}
	claimed := false
	for _, r := range recs {
		claimed = claimed || r.Epoch == l.Epoch()
		if claimed && r.Owner != "standby" {
			t.Fatalf("record of %s after the standby's claim: %+v", r.Owner, r)
		}
	}
	// The child's session is over; it may claim again only after the
	// standby releases, which this test does not do before the child is
	// killed in cleanup.
	if err := l.Store(context.Background(), json.RawMessage(`0`)); err != nil {
		t.Fatalf("the new owner is fenced: %v", err)
	}
}
