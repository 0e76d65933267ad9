package dstest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// httpClient talks to the control endpoint; it never shares connections with
// the code under test, so a fault never lands on a control request.
var httpClient = &http.Client{Timeout: 10 * time.Second}

// Fault is one rule for the server's /_test/inject-error endpoint. The
// server keeps one rule per path: injecting again for a path replaces it.
// Faults are applied before the request reaches the store, so a faulted
// request is never written.
type Fault struct {
	// Path is the request path to fault, e.g. /v1/stream/orders. A full URL
	// is accepted too; only its path is used.
	Path string `json:"path"`
	// Status answers with this HTTP status and a text body.
	Status int `json:"status,omitempty"`
	// Count is how many requests the rule fires for; zero means once.
	Count int `json:"count,omitempty"`
	// RetryAfter sets a Retry-After header (seconds) on a Status answer.
	RetryAfter int `json:"retryAfter,omitempty"`
	// DelayMs delays the answer (or the drop) by this many milliseconds.
	DelayMs int `json:"delayMs,omitempty"`
	// DropConnection destroys the socket instead of answering.
	DropConnection bool `json:"dropConnection,omitempty"`
	// Probability in (0,1] fires the rule on that share of matching
	// requests; zero means always.
	Probability float64 `json:"probability,omitempty"`
	// Method limits the rule to one HTTP method (GET, POST, PUT, ...).
	Method string `json:"method,omitempty"`
}

// ErrExternalServer is returned for operations an external server lacks.
var ErrExternalServer = errors.New("dstest: not available on an external server (DURABLE_STREAMS_URL)")

// InjectFault installs a fault rule on the server.
func (s *Server) InjectFault(ctx context.Context, f Fault) error {
	if s.external {
		return ErrExternalServer
	}
	if u, err := url.Parse(f.Path); err == nil && u.Scheme != "" {
		f.Path = u.Path
	}
	body, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("dstest: encode fault: %w", err)
	}
	return s.control(ctx, http.MethodPost, body)
}

// ClearFaults removes every fault rule.
func (s *Server) ClearFaults(ctx context.Context) error {
	if s.external {
		return ErrExternalServer
	}
	return s.control(ctx, http.MethodDelete, nil)
}

func (s *Server) control(ctx context.Context, method string, body []byte) error {
	req, err := newRequest(ctx, method, s.URL+"/_test/inject-error", body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("dstest: %s inject-error: %w", method, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("dstest: %s inject-error: %s: %s", method, resp.Status, msg)
	}
	return nil
}

func newRequest(ctx context.Context, method, target string, body []byte) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, r)
	if err != nil {
		return nil, fmt.Errorf("dstest: build request: %w", err)
	}
	return req, nil
}
