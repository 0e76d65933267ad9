package durablestreams

import (
	"net/http"
	"regexp"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/defaults"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// traceparentFormat is W3C Trace Context's version 00 traceparent.
var traceparentFormat = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)

// TestTraceContextSurvivesMarshalers: a W3C traceparent and tracestate in
// metadata come back unchanged through the server with every marshaler
// that keeps metadata (CloudEventsMarshaler writes them as the
// CloudEvents distributed-tracing extension attributes of those names).
func TestTraceContextSurvivesMarshalers(t *testing.T) {
	trace := message.Metadata{
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"tracestate":  "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
		"name":        "OrderPlaced",
	}
	require.Regexp(t, traceparentFormat, trace["traceparent"])
	newMsg := func() *message.Message {
		msg := message.NewMessage(watermill.NewUUID(), []byte(`{"id":7}`))
		for k, v := range trace {
			msg.Metadata.Set(k, v)
		}
		return msg
	}
	marshalers := map[string]marshalerUnmarshaler{
		"JSONMarshaler":              JSONMarshaler{},
		"JSONMarshaler/ExactPayload": JSONMarshaler{ExactPayload: true},
		"CloudEventsMarshaler":       CloudEventsMarshaler{Source: "/orders"},
		"FramedMarshaler":            FramedMarshaler{},
	}
	for name, m := range marshalers {
		t.Run(name, func(t *testing.T) {
			msgs := []*message.Message{newMsg(), newMsg()}
			var got []*message.Message
			if fm, ok := m.(FramedMarshaler); ok {
				url := dstest.StreamURL(t)
				serverDo(t, http.MethodPut, url, fm.ContentType(), nil)
				var body []byte
				for _, msg := range msgs {
					data, err := m.Marshal("t", msg)
					require.NoError(t, err)
					body = append(body, data...)
				}
				serverDo(t, http.MethodPost, url, fm.ContentType(), body)
				frames, err := splitAll(fm, serverDo(t, http.MethodGet, url+"?offset=-1", "", nil), 1<<16, defaults.MaxFrameBytes)
				require.NoError(t, err)
				for _, f := range frames {
					msg, err := m.Unmarshal("t", f)
					require.NoError(t, err)
					got = append(got, msg)
				}
			} else {
				values := make([][]byte, len(msgs))
				for i, msg := range msgs {
					var err error
					values[i], err = m.Marshal("t", msg)
					require.NoError(t, err)
				}
				for _, raw := range jsonRoundTrip(t, values) {
					msg, err := m.Unmarshal("t", raw)
					require.NoError(t, err)
					got = append(got, msg)
				}
			}
			require.Len(t, got, len(msgs))
			for i, msg := range got {
				require.Equal(t, msgs[i].UUID, msg.UUID)
				for k, v := range trace {
					require.Equal(t, v, msg.Metadata.Get(k), "%s", k)
				}
			}
		})
	}
}
