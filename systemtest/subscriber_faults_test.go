package systemtest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

func TestSubscribeReadsThroughFaults(t *testing.T) {
	forReadModes(t, func(t *testing.T, mode ds.ReadMode) {
		srv := dstest.Faults(t)
		base := srv.StreamURL(dstest.StreamPath(t))
		sub := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: base, Mode: mode})
		require.NoError(t, sub.SubscribeInitialize("t"))
		msgs := newMessages(3)
		httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs[0]))

		require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: base + "/t", Method: "GET", Status: 503, Count: 3, RetryAfter: 0}))
		ch, err := sub.Subscribe(t.Context(), "t")
		require.NoError(t, err)
		got := receive(t, ch)
		requireSameMessage(t, msgs[0], got)

		// The next reads (catch-up, live) fail: dropped connections, then 429.
		require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: base + "/t", Method: "GET", DropConnection: true, Count: 2}))
		got.Ack()
		httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs[1]))
		got = receive(t, ch)
		requireSameMessage(t, msgs[1], got)
		require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: base + "/t", Method: "GET", Status: 429, Count: 2}))
		got.Ack()
		httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs[2]))
		requireSameMessage(t, msgs[2], receive(t, ch))
	})
}

func TestSubscriberGoroutinesBackToBaseline(t *testing.T) {
	base := dstest.StreamURL(t)
	before := countGoroutinesNow()
	for _, mode := range []ds.ReadMode{ds.ReadLongPoll, ds.ReadSSE} {
		sub, err := ds.NewSubscriber(ds.SubscriberConfig{BaseURL: base, Mode: mode, LiveTimeout: 10 * time.Second}, nil)
		require.NoError(t, err)
		for i := range 5 {
			topic := fmt.Sprintf("t%d", i)
			require.NoError(t, sub.SubscribeInitialize(topic))
			httpDo(t, "POST", base+"/"+topic, "application/json", envelopes(t, newMessages(2)...))
			ch, err := sub.Subscribe(t.Context(), topic)
			require.NoError(t, err)
			receive(t, ch).Ack() // the second waits for an ack forever
		}
		require.NoError(t, sub.Close())
	}
	dstest.RequireGoroutinesBackTo(t, before)
}

// BenchmarkSubscribeBacklog measures messages/s delivered to a consumer
// draining a backlog of 100-byte messages, against a raw catch-up GET of
// the same backlog (the best any reader can do), and reports the ratio.
func BenchmarkSubscribeBacklog(b *testing.B) {
	const total, batch = 20_000, 500
	base := dstest.StreamURL(b)
	topic := "backlog"
	httpDo(b, "PUT", base+"/"+topic, "application/json", "")
	payload := strings.Repeat("x", 100)
	for i := 0; i < total; i += batch {
		msgs := make([]*message.Message, batch)
		for j := range msgs {
			msgs[j] = message.NewMessage(watermill.NewUUID(), []byte(`"`+payload[:98]+`"`))
		}
		httpDo(b, "POST", base+"/"+topic, "application/json", envelopes(b, msgs...))
	}

	var rawTime, subTime time.Duration
	for range b.N {
		start := time.Now()
		resp, err := http.Get(base + "/" + topic + "?offset=-1")
		require.NoError(b, err)
		_, err = io.Copy(io.Discard, resp.Body)
		require.NoError(b, err)
		_ = resp.Body.Close()
		rawTime += time.Since(start)

		sub, err := ds.NewSubscriber(ds.SubscriberConfig{BaseURL: base}, nil)
		require.NoError(b, err)
		start = time.Now()
		ch, err := sub.Subscribe(b.Context(), topic)
		require.NoError(b, err)
		for range total {
			(<-ch).Ack()
		}
		subTime += time.Since(start)
		require.NoError(b, sub.Close())
	}
	n := float64(total * b.N)
	b.ReportMetric(n/subTime.Seconds(), "msgs/s")
	b.ReportMetric(n/rawTime.Seconds(), "raw-msgs/s")
	b.ReportMetric(subTime.Seconds()/rawTime.Seconds(), "x-raw-time")
}

// TestBackoffStartsOverAfterProgress: the wait after a failed read grows
// with failures in a row only; a read that delivered something starts it
// over. A FAKE server (the reference one cannot cut a body in the middle)
// cuts every answer short right after one message the reader has not had
// yet. Each read thus fails after progress, and the backlog is read at the
// pace of the first backoff, not of the largest.
func TestBackoffStartsOverAfterProgress(t *testing.T) {
	const n = 10
	element := func(i int) string {
		return envelopes(t, message.NewMessage(fmt.Sprintf("m%d", i), []byte(fmt.Sprintf(`{"n":%d}`, i))))
	}
	var reads atomic.Int64
	fakeCuttingServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Stream-Next-Offset", "0000000000000000_0000000000000099")
		if r.Method != http.MethodGet {
			return
		}
		var parts []string
		for i := range min(int(reads.Add(1)), n) {
			e := element(i)
			parts = append(parts, e[1:len(e)-1])
		}
		body := "[" + strings.Join(parts, ",") + ","
		w.Header().Set("Content-Length", strconv.Itoa(len(body)+100)) // promised, never sent
		_, _ = io.WriteString(w, body)
	}))
	defer fakeCuttingServer.Close()
	policy := retry.Policy{InitialBackoff: 10 * time.Millisecond, MaxBackoff: 2 * time.Second, MaxElapsed: time.Minute}
	sub := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: fakeCuttingServer.URL, ClientConfig: ds.ClientConfig{RetryPolicy: policy}})
	ch, err := sub.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	start := time.Now()
	for i := range n {
		got := receive(t, ch)
		require.Equal(t, fmt.Sprintf("m%d", i), got.UUID)
		got.Ack()
	}
	// Growing waits would take 10+20+...+1280+2000 ms, at least half of it
	// with the jitter: over 2.2 s. Starting over, each is at most 10 ms.
	require.Less(t, time.Since(start), 2*time.Second)
}
