package systemtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
)

// continueTrace is what the README's OpenTelemetry recipe does, without
// OpenTelemetry: it starts a child span of the consumed message's trace
// (same trace id, a new span id) and writes it into every produced
// message's metadata.
func continueTrace(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		parts := strings.Split(msg.Metadata.Get("traceparent"), "-")
		if len(parts) != 4 {
			return out, err
		}
		var span [8]byte
		_, _ = rand.Read(span[:])
		for _, o := range out {
			o.Metadata.Set("traceparent", parts[0]+"-"+parts[1]+"-"+hex.EncodeToString(span[:])+"-"+parts[3])
			if ts := msg.Metadata.Get("tracestate"); ts != "" {
				o.Metadata.Set("tracestate", ts)
			}
		}
		return out, err
	}
}

// TestTraceContextFlowsThroughRouter: a trace started by the publisher of
// an input message reaches the subscriber of the handler's output through
// two streams, for each marshaler that keeps metadata.
func TestTraceContextFlowsThroughRouter(t *testing.T) {
	marshalers := map[string]interface {
		ds.Marshaler
		ds.Unmarshaler
	}{
		"JSONMarshaler":        ds.JSONMarshaler{},
		"CloudEventsMarshaler": ds.CloudEventsMarshaler{Source: "/test"},
		"FramedMarshaler":      ds.FramedMarshaler{},
	}
	for name, m := range marshalers {
		t.Run(name, func(t *testing.T) {
			pub, base := newTestPublisher(t, ds.PublisherConfig{Marshaler: m})
			sub := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: base, Unmarshaler: m})

			router, err := message.NewRouter(message.RouterConfig{}, nil)
			require.NoError(t, err)
			router.AddMiddleware(continueTrace)
			router.AddHandler("enrich", "in", sub, "out", pub, func(msg *message.Message) ([]*message.Message, error) {
				out := message.NewMessage(watermill.NewUUID(), msg.Payload)
				out.Metadata.Set("name", "Enriched")
				return []*message.Message{out}, nil
			})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan struct{})
			go func() {
				defer close(done)
				_ = router.Run(ctx)
			}()
			defer func() {
				require.NoError(t, router.Close())
				<-done
			}()
			<-router.Running()

			out, err := sub.Subscribe(ctx, "out")
			require.NoError(t, err)
			in := message.NewMessage(watermill.NewUUID(), []byte(`{"id":7}`))
			in.Metadata.Set("name", "OrderPlaced")
			in.Metadata.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			in.Metadata.Set("tracestate", "rojo=00f067aa0ba902b7")
			require.NoError(t, pub.Publish("in", in))

			got := receive(t, out)
			got.Ack()
			parts := strings.Split(got.Metadata.Get("traceparent"), "-")
			require.Len(t, parts, 4, "traceparent %q", got.Metadata.Get("traceparent"))
			assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", parts[1], "same trace")
			assert.NotEqual(t, "00f067aa0ba902b7", parts[2], "a child span")
			assert.Equal(t, "rojo=00f067aa0ba902b7", got.Metadata.Get("tracestate"))
		})
	}
}
