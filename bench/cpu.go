package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ),
// 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// processCPU returns the user+system CPU time a process has used so far.
func processCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("server CPU: %w", err)
	}
	// The command name (field 2) may hold spaces; the fields after its
	// closing parenthesis start with field 3, state.
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("server CPU: short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("server CPU: cannot parse /proc/%d/stat", pid)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// selfCPU returns the user+system CPU time of this process so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuUsage is CPU seconds per wall second during a timed section.
type cpuUsage struct{ server, client float64 }

// runCtx is handed to one run of a job; it times the measured sections
// and records the CPU the server and the client spent in them.
type runCtx struct {
	b     *bench
	usage map[string]cpuUsage
	last  cpuUsage
	// serverPID is the server whose CPU the run's lines show: zero means
	// the bench's server, negative none (a peer's server, not measured).
	serverPID int
}

// timed runs fn and returns how long it took; the CPU used meanwhile is
// recorded for the given lines.
func (r *runCtx) timed(fn func() error, lineIDs ...string) (time.Duration, error) {
	pid := r.serverPID
	if pid == 0 {
		pid = r.b.srv.PID()
	}
	server0, err := serverCPU(pid)
	if err != nil {
		return 0, err
	}
	self0 := selfCPU()
	start := time.Now()
	if err := fn(); err != nil {
		return 0, err
	}
	wall := time.Since(start)
	server1, err := serverCPU(pid)
	if err != nil {
		return 0, err
	}
	u := cpuUsage{
		server: (server1 - server0).Seconds() / wall.Seconds(),
		client: (selfCPU() - self0).Seconds() / wall.Seconds(),
	}
	r.last = u
	for _, id := range lineIDs {
		r.usage[id] = u
	}
	return wall, nil
}

// setClientCPU replaces the client CPU of lines whose client is another
// process.
func (r *runCtx) setClientCPU(perWallSecond float64, lineIDs ...string) {
	r.last.client = perWallSecond
	for _, id := range lineIDs {
		u := r.usage[id]
		u.client = perWallSecond
		r.usage[id] = u
	}
}

// usageOf returns a line's CPU, or that of the last timed section.
func (r *runCtx) usageOf(lineID string) cpuUsage {
	if u, ok := r.usage[lineID]; ok {
		return u
	}
	return r.last
}

// withTimeout bounds one measured section, so that a stuck run fails
// instead of hanging the command.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 3*time.Minute)
}

// serverCPU is processCPU, and zero for a server not measured (pid < 0).
func serverCPU(pid int) (time.Duration, error) {
	if pid < 0 {
		return 0, nil
	}
	return processCPU(pid)
}
