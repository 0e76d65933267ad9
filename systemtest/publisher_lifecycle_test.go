package systemtest

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

// putSignal tells on puts when a PUT is about to be sent.
type putSignal struct {
	base http.RoundTripper
	puts chan<- struct{}
}

func (s putSignal) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPut {
		select {
		case s.puts <- struct{}{}:
		default:
		}
	}
	return s.base.RoundTrip(req)
}

// Issue 12 item 5: with a server slower than IdleProducerTimeout, async
// messages are still in flight when the topic looks idle. The producer
// must not be released then: before, the old and the new producer fenced
// each other, messages landed out of order and Flush returned nil with
// messages unacknowledged.
func TestIdleReleaseWaitsForPendingMessages(t *testing.T) {
	for _, disableAutoClaim := range []bool{false, true} {
		t.Run(fmt.Sprintf("DisableAutoClaim=%v", disableAutoClaim), func(t *testing.T) {
			srv := dstest.Faults(t)
			base := srv.StreamURL(dstest.StreamPath(t))
			var mu sync.Mutex
			var asyncErrs []error
			cfg := ds.PublisherConfig{BaseURL: base, Async: true, IdleProducerTimeout: 100 * time.Millisecond,
				DisableAutoClaim: disableAutoClaim, MaxBatchBytes: 300, MaxInFlight: 1}
			cfg.OnAsyncError = func(_, _ string, err error) {
				mu.Lock()
				asyncErrs = append(asyncErrs, err)
				mu.Unlock()
			}
			client, ct := newCountingClient()
			cfg.HTTPClient = client
			pub, _ := newTestPublisher(t, cfg)
			require.NoError(t, pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`0`))))
			require.NoError(t, pub.Flush(t.Context()))
			require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: base + "/t", Method: "POST", DelayMs: 150, Count: 10_000}))

			const n = 30
			for i := 1; i <= n; i++ {
				require.NoError(t, pub.Publish("t", message.NewMessage(watermill.NewUUID(), fmt.Appendf(nil, "%d", i))))
				if i%5 == 0 {
					// A pause longer than IdleProducerTimeout, while
					// requests are in flight: the scenario, not a sync.
					time.Sleep(120 * time.Millisecond)
				}
			}
			require.NoError(t, pub.Flush(t.Context()), "Flush covers every message published before it")
			mu.Lock()
			require.Empty(t, asyncErrs)
			mu.Unlock()
			got := payloadsOf(t, base+"/t")
			want := make([]string, n+1)
			for i := range want {
				want[i] = fmt.Sprint(i)
			}
			require.Equal(t, want, got, "every message once, in order")
			t.Logf("%d POSTs for %d messages", ct.posts.Load(), n+1)
		})
	}
}

// Issue 12 item 6: Close honours CloseTimeout while a stream is being
// created against a server whose PUTs fail; the waiting Publish fails as
// not written.
func TestCloseTimeoutBoundsStreamCreation(t *testing.T) {
	srv := dstest.Faults(t)
	base := srv.StreamURL(dstest.StreamPath(t))
	require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: base + "/t", Method: "PUT", Status: 503, Count: 100_000}))
	puts := make(chan struct{}, 1)
	cfg := ds.PublisherConfig{BaseURL: base, CloseTimeout: time.Second}
	cfg.HTTPClient = &http.Client{Transport: putSignal{base: http.DefaultTransport, puts: puts}}
	cfg.RetryPolicy = retry.Policy{InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, MaxElapsed: time.Minute}
	pub, err := ds.NewPublisher(cfg, nil)
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { errc <- pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`1`))) }()
	<-puts

	start := time.Now()
	_ = pub.Close()
	took := time.Since(start)
	t.Logf("Close took %s with CloseTimeout 1s while creation retried", took)
	require.Less(t, took, 10*time.Second, "bounded by CloseTimeout, not by the retry policy's minute")
	err = <-errc
	require.ErrorIs(t, err, ds.ErrPublisherClosed)
	require.NotErrorIs(t, err, ds.ErrOutcomeUnknown, "nothing was appended")
}

// Issue 12 item 7: concurrent first Publishes to a topic share the stream
// creation, but one caller's deadline must not fail the other.
func TestFirstPublishDeadlineDoesNotFailAnotherCaller(t *testing.T) {
	srv := dstest.Faults(t)
	base := srv.StreamURL(dstest.StreamPath(t))
	require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: base + "/t", Method: "PUT", DelayMs: 500}))
	puts := make(chan struct{}, 1)
	cfg := ds.PublisherConfig{BaseURL: base}
	cfg.HTTPClient = &http.Client{Transport: putSignal{base: http.DefaultTransport, puts: puts}}
	pub, _ := newTestPublisher(t, cfg)

	hurried := message.NewMessage(watermill.NewUUID(), []byte(`"hurried"`))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	hurried.SetContext(ctx)
	hurriedErr := make(chan error, 1)
	go func() { hurriedErr <- pub.Publish("t", hurried) }()
	<-puts // creation has started, under the first caller's Publish

	patient := message.NewMessage(watermill.NewUUID(), []byte(`"patient"`))
	require.NoError(t, pub.Publish("t", patient), "a caller with no deadline is not failed by another's")
	require.ErrorIs(t, <-hurriedErr, context.DeadlineExceeded)
	require.Equal(t, []string{`"patient"`}, payloadsOf(t, base+"/t"))
}
