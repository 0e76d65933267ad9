package main

import (
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// probe is an http.RoundTripper that watches a client's round trips
// without changing them: it counts requests by method and status, and
// notes when the first request went out, when the first response byte
// of data arrived and when the latest response body that carried data
// ended. The diagnostic rows use it to tell round trips, server time and
// client time apart.
type probe struct {
	base http.RoundTripper

	mu       sync.Mutex
	sent     map[string]int // by method
	inFlight int            // requests sent and not answered
	// concurrency sums, over the requests sent, how many were in flight
	// with each one (itself included).
	concurrency int
	counts      map[answer]int
	firstSent   time.Time
	firstData   time.Time
	lastData    time.Time
}

// probedClient returns a client sending through a probe on the
// library's default transport (protocol.NewHTTPClient), so that only
// the probe differs from what the library would use on its own.
func probedClient(disableCompression bool) (*http.Client, *probe) {
	hc := protocol.NewHTTPClient(64)
	hc.Transport.(*http.Transport).DisableCompression = disableCompression
	p := newProbe(hc.Transport)
	hc.Transport = p
	return hc, p
}

func newProbe(base http.RoundTripper) *probe {
	return &probe{base: base, sent: make(map[string]int), counts: make(map[answer]int)}
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// transport underneath.
func (p *probe) CloseIdleConnections() {
	if c, ok := p.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// answer is a request's method and its response's status (0: no response).
type answer struct {
	method string
	status int
}

func (p *probe) RoundTrip(req *http.Request) (*http.Response, error) {
	p.mu.Lock()
	if p.firstSent.IsZero() {
		p.firstSent = time.Now()
	}
	p.sent[req.Method]++
	p.inFlight++
	p.concurrency += p.inFlight
	p.mu.Unlock()
	resp, err := p.base.RoundTrip(req)
	a := answer{method: req.Method}
	if err == nil {
		a.status = resp.StatusCode
		resp.Body = &probedBody{ReadCloser: resp.Body, p: p}
	}
	p.mu.Lock()
	p.inFlight--
	p.counts[a]++
	p.mu.Unlock()
	return resp, err
}

// answered returns how many requests of the method got an answer whose
// status matches.
func (p *probe) answered(method string, match func(status int) bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	total := 0
	for a, n := range p.counts {
		if a.method == method && a.status != 0 && match(a.status) {
			total += n
		}
	}
	return total
}

func isSuccess(status int) bool { return status/100 == 2 }

// sentRequests returns how many requests of the method were sent so far.
func (p *probe) sentRequests(method string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent[method]
}

// meanInFlight returns how many requests were in flight, on average,
// when one was sent (itself included).
func (p *probe) meanInFlight() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	total := 0
	for _, n := range p.sent {
		total += n
	}
	if total == 0 {
		return 0
	}
	return float64(p.concurrency) / float64(total)
}

// times returns the probe's instants (zero when not seen yet).
func (p *probe) times() (firstSent, firstData, lastData time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.firstSent, p.firstData, p.lastData
}

// probedBody notes the first byte read and the end of a body that
// carried data (io.EOF, or Close when the reader stops before EOF).
type probedBody struct {
	io.ReadCloser
	p     *probe
	data  bool
	ended bool
}

func (b *probedBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	if n > 0 && !b.data {
		b.data = true
		b.p.mark(&b.p.firstData, false)
	}
	if err == io.EOF {
		b.end()
	}
	return n, err
}

func (b *probedBody) Close() error {
	b.end()
	return b.ReadCloser.Close()
}

func (b *probedBody) end() {
	if b.data && !b.ended {
		b.ended = true
		b.p.mark(&b.p.lastData, true)
	}
}

// mark sets *t to now, once unless again.
func (p *probe) mark(t *time.Time, again bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if again || t.IsZero() {
		*t = time.Now()
	}
}
