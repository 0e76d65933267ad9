package producer

import (
	"net/http"
	"net/http/httptrace"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// staleConflictScript drives one interleaving with two batches in flight:
// seq 2 reaches the server before seq 1 and gets 409 (expected 1), but its
// answer reaches the producer only after seq 1 was acknowledged. The 409
// then describes a server state that no longer holds.
type staleConflictScript struct {
	next http.RoundTripper
	srv  *dstest.Server
	url  string

	seq1Arrived  chan struct{}
	holdSeq1     chan struct{} // seq 1 waits until seq 2 was answered
	seq2Answered chan struct{}
	releaseSeq2  chan struct{} // seq 2's answer waits for this

	mu    sync.Mutex
	tries map[int64]int
}

func (s *staleConflictScript) RoundTrip(req *http.Request) (*http.Response, error) {
	seq, _ := strconv.ParseInt(req.Header.Get(protocol.HeaderProducerSeq), 10, 64)
	s.mu.Lock()
	s.tries[seq]++
	try := s.tries[seq]
	s.mu.Unlock()

	switch {
	case seq == 1 && try == 1:
		// Written, as far as the producer can tell, but slow on the way:
		// the producer sends seq 2 meanwhile.
		if trace := httptrace.ContextClientTrace(req.Context()); trace != nil && trace.WroteRequest != nil {
			trace.WroteRequest(httptrace.WroteRequestInfo{})
		}
		close(s.seq1Arrived)
		<-s.holdSeq1
	case seq == 1 && try == 2:
		// A batch renumbered onto seq 1 would meet a 503 first, making its
		// fate uncertain, and then the server's duplicate answer.
		if err := s.srv.InjectFault(req.Context(), dstest.Fault{Path: s.url, Method: "POST", Status: 503}); err != nil {
			return nil, err
		}
	case seq == 2 && try == 1:
		resp, err := s.next.RoundTrip(req)
		close(s.seq2Answered)
		<-s.releaseSeq2
		return resp, err
	}
	return s.next.RoundTrip(req)
}

func TestStaleConflictAfterAckLosesNothing(t *testing.T) {
	srv := dstest.Faults(t)
	url := srv.StreamURL(dstest.StreamPath(t))
	createStream(t, url, protocol.ContentTypeJSON)
	script := &staleConflictScript{
		next:         protocol.NewHTTPClient(8).Transport,
		srv:          srv,
		url:          url,
		seq1Arrived:  make(chan struct{}),
		holdSeq1:     make(chan struct{}),
		seq2Answered: make(chan struct{}),
		releaseSeq2:  make(chan struct{}),
		tries:        map[int64]int{},
	}
	cfg := Config{
		URL:         url,
		ContentType: protocol.ContentTypeJSON,
		ProducerID:  "stale-409",
		MaxInFlight: 2,
		Linger:      time.Millisecond,
		Retry:       fastRetry(),
		Client:      &protocol.Client{HTTP: &http.Client{Transport: script}, RequestTimeout: 5 * time.Second},
	}
	p := start(t, cfg)

	results := make(chan error, 3)
	done := func(_ string, err error) { results <- err }
	require.NoError(t, p.Append(t.Context(), payload(0, 0), done))
	require.NoError(t, <-results) // seq 0: the epoch is established

	acked1 := make(chan error, 1)
	require.NoError(t, p.Append(t.Context(), payload(0, 1), func(_ string, err error) { acked1 <- err }))
	<-script.seq1Arrived // seq 1 is in flight alone; the next message is a batch of its own
	require.NoError(t, p.Append(t.Context(), payload(0, 2), done))

	<-script.seq2Answered // the server said 409, expected 1
	close(script.holdSeq1)
	require.NoError(t, <-acked1) // seq 1 is written and acknowledged
	close(script.releaseSeq2)    // only now does the stale 409 arrive
	require.NoError(t, <-results)

	requireExactlyOnce(t, url, map[int][]int{0: {0, 1, 2}})
}
