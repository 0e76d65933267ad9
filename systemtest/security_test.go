package systemtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// tlsFront is a TLS-terminating reverse proxy in front of the real server
// that records the Authorization header of every request.
type tlsFront struct {
	*httptest.Server
	mu    sync.Mutex
	auths []string
}

func newTLSFront(t *testing.T) *tlsFront {
	t.Helper()
	target, err := url.Parse(dstest.Shared(t).URL)
	require.NoError(t, err)
	f := &tlsFront{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	f.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.auths = append(f.auths, r.Header.Get("Authorization"))
		f.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *tlsFront) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.auths...)
}

func clientTrusting(f *tlsFront) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(f.Certificate())
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

func TestTLSWithCustomCA(t *testing.T) {
	front := newTLSFront(t)
	base := front.URL + "/v1/stream/" + dstest.StreamPath(t)

	pub, _ := newTestPublisher(t, ds.PublisherConfig{
		BaseURL:      base,
		ClientConfig: ds.ClientConfig{HTTPClient: clientTrusting(front)},
	})
	require.NoError(t, pub.Publish("secure", message.NewMessage(watermill.NewUUID(), []byte(`{"tls":true}`))))
	require.Len(t, readJSONStream(t, dstest.Shared(t).StreamURL(strings.TrimPrefix(base, front.URL+"/v1/stream/")+"/secure")), 1)

	// Without the CA the certificate is refused at once, not retried.
	untrusting, _ := newTestPublisher(t, ds.PublisherConfig{
		BaseURL:      base,
		ClientConfig: ds.ClientConfig{RequestTimeout: 2 * time.Second},
	})
	start := time.Now()
	err := untrusting.Publish("secure", message.NewMessage(watermill.NewUUID(), []byte(`1`)))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "certificate")
	assert.Less(t, time.Since(start), 10*time.Second, "a certificate error is final")
}

func TestRotatingAuthorizationOnEveryRequestNeverLogged(t *testing.T) {
	front := newTLSFront(t)
	base := front.URL + "/v1/stream/" + dstest.StreamPath(t)

	var n atomic.Int64
	logs := newCapturingLogger()
	pub, err := ds.NewPublisher(ds.PublisherConfig{
		BaseURL: base,
		ClientConfig: ds.ClientConfig{HTTPClient: clientTrusting(front), Header: http.Header{"X-Static-Secret": {"static-secret-value"}}, HeaderFunc: func(_ context.Context, h http.Header) error {
			h.Set("Authorization", fmt.Sprintf("Bearer rotating-token-%d", n.Add(1)))
			return nil
		}},
	}, logs)
	require.NoError(t, err)
	for i := range 20 {
		require.NoError(t, pub.Publish(fmt.Sprintf("topic-%d", i%3), message.NewMessage(watermill.NewUUID(), []byte(`1`))))
	}
	_, err = pub.CloseStream(context.Background(), "topic-0", nil)
	require.NoError(t, err)
	require.NoError(t, pub.Close())

	seen := front.seen()
	require.NotEmpty(t, seen)
	distinct := map[string]bool{}
	for _, auth := range seen {
		require.True(t, strings.HasPrefix(auth, "Bearer rotating-token-"), "request without the rotating token: %q", auth)
		distinct[auth] = true
	}
	assert.Len(t, distinct, len(seen), "HeaderFunc runs once per request")

	all := logs.text()
	require.NotEmpty(t, all, "the publisher logs at trace level")
	assert.NotContains(t, all, "rotating-token")
	assert.NotContains(t, all, "static-secret-value")
}

// capturingLogger keeps every log line with its fields, at every level.
type capturingLogger struct {
	mu    sync.Mutex
	lines []string
	extra watermill.LogFields
}

func newCapturingLogger() *capturingLogger { return &capturingLogger{} }

func (l *capturingLogger) log(level, msg string, err error, fields watermill.LogFields) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf("%s %s err=%v fields=%v extra=%v", level, msg, err, fields, l.extra))
}

func (l *capturingLogger) Error(msg string, err error, fields watermill.LogFields) {
	l.log("ERROR", msg, err, fields)
}
func (l *capturingLogger) Info(msg string, fields watermill.LogFields) {
	l.log("INFO", msg, nil, fields)
}
func (l *capturingLogger) Debug(msg string, fields watermill.LogFields) {
	l.log("DEBUG", msg, nil, fields)
}
func (l *capturingLogger) Trace(msg string, fields watermill.LogFields) {
	l.log("TRACE", msg, nil, fields)
}
func (l *capturingLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return &sharedCapture{parent: l, fields: fields}
}

func (l *capturingLogger) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// sharedCapture is a With() child writing into its parent's lines.
type sharedCapture struct {
	parent *capturingLogger
	fields watermill.LogFields
}

func (s *sharedCapture) Error(msg string, err error, fields watermill.LogFields) {
	s.parent.log("ERROR", msg, err, s.fields.Add(fields))
}
func (s *sharedCapture) Info(msg string, fields watermill.LogFields) {
	s.parent.log("INFO", msg, nil, s.fields.Add(fields))
}
func (s *sharedCapture) Debug(msg string, fields watermill.LogFields) {
	s.parent.log("DEBUG", msg, nil, s.fields.Add(fields))
}
func (s *sharedCapture) Trace(msg string, fields watermill.LogFields) {
	s.parent.log("TRACE", msg, nil, s.fields.Add(fields))
}
func (s *sharedCapture) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return &sharedCapture{parent: s.parent, fields: s.fields.Add(fields)}
}
