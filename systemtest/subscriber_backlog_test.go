package systemtest

import (
	"bytes"
	"net/http"
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
)

// bigMessages are n messages of about size payload bytes each.
func bigMessages(n, size int) []*message.Message {
	msgs := make([]*message.Message, n)
	for i := range msgs {
		p := `{"n":` + strconv.Itoa(i) + `,"pad":"` + strings.Repeat("p", size) + `"}`
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(p))
	}
	return msgs
}

// TestBacklogLargerThanMaxReadBytes: a catch-up read of a backlog many
// times MaxReadBytes (which bounds one message) is decoded as it arrives,
// in JSON mode and in byte mode; a message larger than MaxReadBytes ends
// the subscription before it, skipping nothing.
func TestBacklogLargerThanMaxReadBytes(t *testing.T) {
	const limit = 16 << 10
	for _, mode := range []string{"json", "bytes"} {
		t.Run(mode, func(t *testing.T) {
			base := dstest.StreamURL(t)
			cfg := ds.SubscriberConfig{BaseURL: base, MaxReadBytes: limit}
			contentType := "application/json"
			if mode == "bytes" {
				cfg.Unmarshaler = ds.FramedMarshaler{}
				contentType = ds.FramedMarshaler{}.ContentType()
			}
			sub := newTestSubscriber(t, cfg)
			require.NoError(t, sub.SubscribeInitialize("t"))
			msgs := bigMessages(400, 1000) // ~400 KiB: 25 times the limit
			for i := 0; i < len(msgs); i += 50 {
				httpDo(t, "POST", base+"/t", contentType, body(t, cfg, msgs[i:i+50]))
			}
			tooBig := bigMessages(1, 2*limit)
			httpDo(t, "POST", base+"/t", contentType, body(t, cfg, tooBig))
			httpDo(t, "POST", base+"/t", contentType, body(t, cfg, msgs[:1]))

			ch, err := sub.Subscribe(t.Context(), "t")
			require.NoError(t, err)
			for _, want := range msgs {
				got := receive(t, ch)
				requireSameMessage(t, want, got)
				got.Ack()
			}
			requireClosed(t, ch) // at the message over the limit
		})
	}
}

// body is one POST body of msgs in the config's format.
func body(t testing.TB, cfg ds.SubscriberConfig, msgs []*message.Message) string {
	t.Helper()
	m, ok := cfg.Unmarshaler.(ds.Marshaler)
	if !ok {
		return envelopes(t, msgs...)
	}
	var out bytes.Buffer
	for _, msg := range msgs {
		b, err := m.Marshal("t", msg)
		require.NoError(t, err)
		out.Write(b)
	}
	return out.String()
}

// TestSlowConsumerKeepsItsRead: a handler slower than RequestTimeout does
// not cut its own catch-up read short: the timeout bounds each wait on
// the network, not the whole answer, so one GET carries the backlog.
func TestSlowConsumerKeepsItsRead(t *testing.T) {
	base := dstest.StreamURL(t)
	var catchUps atomic.Int64
	inner := http.DefaultTransport.(*http.Transport).Clone()
	client := &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method == http.MethodGet && req.URL.Query().Get("live") == "" {
			catchUps.Add(1)
		}
		return inner.RoundTrip(req)
	})}
	cfg := ds.SubscriberConfig{BaseURL: base}
	cfg.HTTPClient = client
	cfg.RequestTimeout = 300 * time.Millisecond
	sub := newTestSubscriber(t, cfg)
	require.NoError(t, sub.SubscribeInitialize("t"))
	msgs := bigMessages(1000, 2000) // ~2 MB: more than the socket buffers hold
	for i := 0; i < len(msgs); i += 100 {
		httpDo(t, "POST", base+"/t", "application/json", envelopes(t, msgs[i:i+100]...))
	}
	ch, err := sub.Subscribe(t.Context(), "t")
	require.NoError(t, err)
	for i, want := range msgs {
		got := receive(t, ch)
		requireSameMessage(t, want, got)
		if i == 10 {
			time.Sleep(3 * cfg.RequestTimeout) // the handler's slow work, not synchronisation
		}
		got.Ack()
	}
	require.Equal(t, int64(1), catchUps.Load(), "catch-up GETs for one backlog")
}

// TestLiveBatchLargerThanMaxReadBytes: one append of many small messages,
// larger as a whole than MaxReadBytes, arrives while the subscription
// tails the stream. Long-poll hands the answer over as it arrives; SSE,
// whose events are read whole, reads that batch again by a catch-up GET.
// Either way every message is delivered, and only a message over the
// limit ends the subscription.
func TestLiveBatchLargerThanMaxReadBytes(t *testing.T) {
	const limit = 16 << 10
	for _, format := range []string{"json", "bytes"} {
		t.Run(format, func(t *testing.T) {
			forReadModes(t, func(t *testing.T, mode ds.ReadMode) {
				base := dstest.StreamURL(t)
				client, live := newLiveSignal()
				cfg := ds.SubscriberConfig{BaseURL: base, Mode: mode, MaxReadBytes: limit}
				cfg.HTTPClient = client
				contentType := "application/json"
				if format == "bytes" {
					cfg.Unmarshaler = ds.FramedMarshaler{}
					contentType = ds.FramedMarshaler{}.ContentType()
				}
				sub := newTestSubscriber(t, cfg)
				require.NoError(t, sub.SubscribeInitialize("t"))
				ch, err := sub.Subscribe(t.Context(), "t")
				require.NoError(t, err)
				<-live.live                   // caught up: what follows is read live
				msgs := bigMessages(50, 1000) // ~50 KiB in one append
				httpDo(t, "POST", base+"/t", contentType, body(t, cfg, msgs))
				for _, want := range msgs {
					got := receive(t, ch)
					requireSameMessage(t, want, got)
					got.Ack()
				}
				after := bigMessages(1, 10)
				httpDo(t, "POST", base+"/t", contentType, body(t, cfg, after))
				got := receive(t, ch)
				requireSameMessage(t, after[0], got)
				got.Ack()
				httpDo(t, "POST", base+"/t", contentType, body(t, cfg, bigMessages(1, 2*limit)))
				requireClosed(t, ch)
			})
		})
	}
}
