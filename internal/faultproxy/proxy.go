// Package faultproxy is a TCP fault proxy for tests: it relays connections
// from 127.0.0.1 to a server and, when armed, loses responses after the
// server has applied the request — the one fault a server's own
// fault injection cannot produce, because it fires before applying.
package faultproxy

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
)

// Proxy is a TCP fault proxy in front of one server address.
type Proxy struct {
	ln     net.Listener
	target string
	lose   atomic.Int64
	lost   atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// New listens on a random 127.0.0.1 port and relays to target (host:port,
// or a URL whose host is used).
func New(target string) (*Proxy, error) {
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		target = u.Host
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL rewrites a URL of the target server to go through the proxy.
func (p *Proxy) URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Host = p.Addr()
	return u.String()
}

// LoseResponses arms the proxy: the next n times the server starts to
// answer, the proxy closes both sides of that connection instead of
// relaying the answer. The request has reached the server and been applied.
func (p *Proxy) LoseResponses(n int) { p.lose.Store(int64(n)) }

// Lost is how many responses the proxy has lost so far.
func (p *Proxy) Lost() int { return int(p.lost.Load()) }

// Close stops listening, cuts every connection and waits for every
// goroutine of the proxy.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		if !p.track(client, server) {
			return
		}
		p.wg.Add(2)
		go p.requests(client, server)
		go p.responses(client, server)
	}
}

func (p *Proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range conns {
			_ = c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) forget(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

// requests relays client bytes to the server as they come.
func (p *Proxy) requests(client, server net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(server, client)
	p.forget(client, server)
}

// responses relays server bytes to the client, unless the proxy is armed
// when they arrive: then the response is lost and both sides are closed.
func (p *Proxy) responses(client, server net.Conn) {
	defer p.wg.Done()
	defer p.forget(client, server)
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			if p.take() {
				p.lost.Add(1)
				return
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or closed: forget closes the other side
		}
	}
}

// take consumes one armed loss, if any.
func (p *Proxy) take() bool {
	for {
		n := p.lose.Load()
		if n <= 0 {
			return false
		}
		if p.lose.CompareAndSwap(n, n-1) {
			return true
		}
	}
}
