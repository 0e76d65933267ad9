package protocol

import (
	"net"
	"net/http"
	"time"
)

// NewHTTPClient returns the client used when the user gives none. Go's
// default transport keeps only 2 idle connections per host, which would
// open and close a connection for most pipelined requests; and the
// reference server closes idle keep-alive connections after 5 s, so ours
// give them up sooner to avoid writing into a socket being closed.
func NewHTTPClient(connsPerHost int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 0
	t.MaxIdleConnsPerHost = connsPerHost
	t.IdleConnTimeout = 4 * time.Second
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return &http.Client{Transport: t}
}
