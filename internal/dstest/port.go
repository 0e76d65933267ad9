package dstest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// A server is restarted on the port it had, so that its URL stays the
// same. A port the kernel handed out for "port 0" lies in the ephemeral
// range, from which it also picks the local ports of outgoing connections
// and of every other "port 0" listener on the machine: while the server
// is down for a restart, any of those can take its port (seen here:
// EADDRINUSE on restart with other test binaries running). So servers get
// a port below that range, which the kernel never hands out on its own.

// fixedPortRange is where freePort picks from: below the ephemeral range.
func fixedPortRange() (lo, hi int) {
	lo, hi = 10000, 32767
	raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	fields := strings.Fields(string(raw))
	if len(fields) == 2 {
		if first, err := strconv.Atoi(fields[0]); err == nil && first-1 > lo+1000 {
			hi = first - 1
		}
	}
	return lo, hi
}

// freePort returns a port outside the ephemeral range that nothing listens
// on now. Another process may still take it before the server does; start
// tries again with another port then.
func freePort() (int, error) {
	lo, hi := fixedPortRange()
	for range 100 {
		port := lo + rand.IntN(hi-lo+1)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		_ = l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("dstest: no free port in %d-%d", lo, hi)
}
