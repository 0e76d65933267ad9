package producer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

func TestMain(m *testing.M) { dstest.Main(m) }

// recorder is an http.RoundTripper that counts append requests, checks
// what every one of them carries, and can hold requests at a gate.
type recorder struct {
	next     http.RoundTripper
	requests atomic.Int64
	maxBody  atomic.Int64

	mu       sync.Mutex
	problems []string
	gate     chan struct{} // when non-nil, POSTs wait until it is closed
	arrived  chan struct{} // one value per POST that reached the gate
}

func newRecorder() *recorder {
	return &recorder{next: protocol.NewHTTPClient(8).Transport}
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost {
		r.requests.Add(1)
		for n := r.maxBody.Load(); req.ContentLength > n && !r.maxBody.CompareAndSwap(n, req.ContentLength); n = r.maxBody.Load() {
		}
		for _, h := range []string{protocol.HeaderProducerID, protocol.HeaderProducerEpoch, protocol.HeaderProducerSeq, "Content-Type"} {
			if req.Header.Get(h) == "" {
				r.problem("request without " + h)
			}
		}
		r.mu.Lock()
		gate, arrived := r.gate, r.arrived
		r.mu.Unlock()
		if gate != nil {
			// Held requests count as written, as if slow on the wire, so
			// that the producer sends the next ones meanwhile.
			if trace := httptrace.ContextClientTrace(req.Context()); trace != nil && trace.WroteRequest != nil {
				trace.WroteRequest(httptrace.WroteRequestInfo{})
			}
			if arrived != nil {
				arrived <- struct{}{}
			}
			select {
			case <-gate:
			case <-req.Context().Done():
				return nil, req.Context().Err()
			}
		}
	}
	return r.next.RoundTrip(req)
}

func (r *recorder) problem(s string) {
	r.mu.Lock()
	r.problems = append(r.problems, s)
	r.mu.Unlock()
}

// hold makes the next POSTs wait; release lets them go.
func (r *recorder) hold(arrivals int) (arrived <-chan struct{}, release func()) {
	gate := make(chan struct{})
	ch := make(chan struct{}, arrivals)
	r.mu.Lock()
	r.gate, r.arrived = gate, ch
	r.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			r.mu.Lock()
			r.gate, r.arrived = nil, nil
			r.mu.Unlock()
			close(gate)
		})
	}
}

func (r *recorder) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Empty(t, r.problems)
}

func fastRetry() retry.Policy {
	return retry.Policy{InitialBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, MaxElapsed: 15 * time.Second}
}

// testConfig is a config for url with fast retries and a recorder.
func testConfig(t *testing.T, url string) (Config, *recorder) {
	t.Helper()
	rec := newRecorder()
	t.Cleanup(func() { rec.next.(*http.Transport).CloseIdleConnections() })
	return Config{
		URL:         url,
		ContentType: protocol.ContentTypeJSON,
		ProducerID:  "producer-" + t.Name(),
		Retry:       fastRetry(),
		Client:      &protocol.Client{HTTP: &http.Client{Transport: rec}, RequestTimeout: 5 * time.Second},
	}, rec
}

func start(t *testing.T, cfg Config) *Producer {
	t.Helper()
	p, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

func createStream(t *testing.T, url, contentType string) {
	t.Helper()
	c := &protocol.Client{HTTP: &http.Client{}, RequestTimeout: 5 * time.Second}
	require.NoError(t, c.CreateStream(t.Context(), url, protocol.StreamOptions{ContentType: contentType}))
}

// rawPost appends with explicit producer headers, as another producer would.
func rawPost(t *testing.T, url, id string, epoch, seq int64, body string, extra ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", protocol.ContentTypeJSON)
	if id != "" {
		req.Header.Set(protocol.HeaderProducerID, id)
		req.Header.Set(protocol.HeaderProducerEpoch, strconv.FormatInt(epoch, 10))
		req.Header.Set(protocol.HeaderProducerSeq, strconv.FormatInt(seq, 10))
	}
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	protocol.DrainClose(resp.Body)
	return resp
}

// readJSON reads a JSON stream from the start, following Stream-Next-Offset
// until Stream-Up-To-Date.
func readJSON(t *testing.T, url string) []json.RawMessage {
	t.Helper()
	var all []json.RawMessage
	offset := "-1"
	for range 10000 {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url+"?offset="+offset, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
		var part []json.RawMessage
		require.NoError(t, json.Unmarshal(body, &part), "%s", body)
		all = append(all, part...)
		offset = resp.Header.Get(protocol.HeaderNextOffset)
		if resp.Header.Get(protocol.HeaderUpToDate) == "true" {
			return all
		}
	}
	t.Fatal("stream never up to date")
	return nil
}

type msg struct {
	G int `json:"g"`
	I int `json:"i"`
}

func payload(g, i int) []byte { return fmt.Appendf(nil, `{"g":%d,"i":%d}`, g, i) }

// requireExactlyOnce checks that want (per writer g, the indexes it
// appended) is in the stream exactly once each, in per-writer order.
func requireExactlyOnce(t *testing.T, url string, want map[int][]int) {
	t.Helper()
	got := map[int][]int{}
	for _, raw := range readJSON(t, url) {
		var m msg
		require.NoError(t, json.Unmarshal(raw, &m))
		got[m.G] = append(got[m.G], m.I)
	}
	for g, is := range want {
		require.Equal(t, is, got[g], "writer %d: messages missing, duplicated or reordered", g)
	}
	require.Len(t, got, len(want))
}

// appendAll appends n messages from each of writers goroutines, waits for
// all results, and returns the indexes that succeeded per writer.
func appendAll(t *testing.T, p *Producer, writers, n int) (ok map[int][]int, failed []error) {
	t.Helper()
	var mu sync.Mutex
	ok = map[int][]int{}
	var wg, results sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				results.Add(1)
				err := p.Append(t.Context(), payload(g, i), func(_ string, err error) {
					defer results.Done()
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						failed = append(failed, err)
						return
					}
					ok[g] = append(ok[g], i)
				})
				if err != nil {
					results.Done()
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	results.Wait()
	for g := range ok {
		slices.Sort(ok[g])
	}
	return ok, failed
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func full(writers, n int) map[int][]int {
	m := map[int][]int{}
	for g := range writers {
		m[g] = seq(n)
	}
	return m
}
