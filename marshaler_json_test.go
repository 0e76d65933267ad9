package durablestreams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
)

// jsonMarshalers are the envelope marshaler's modes.
var jsonMarshalers = map[string]JSONMarshaler{"default": {}, "exact": {ExactPayload: true}}

func TestJSONMarshalerRoundTrip(t *testing.T) {
	for mode, m := range jsonMarshalers {
		for _, tc := range trickyMessages() {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				data, err := m.Marshal("topic", tc.msg)
				require.NoError(t, err)
				require.True(t, json.Valid(data), "envelope is not JSON: %s", data)
				got, err := m.Unmarshal("topic", data)
				require.NoError(t, err)
				requireEqualMessages(t, roundTripped(m, tc.msg), got)
			})
		}
	}
}

// roundTripped is msg as m.Unmarshal returns it from m.Marshal's output
// kept byte for byte: JSON payloads under "payload" lose the whitespace
// around their value, as in any JSON reader.
func roundTripped(m JSONMarshaler, msg *message.Message) *message.Message {
	if m.ExactPayload || jsonscan.Classify(msg.Payload, jsonscan.MaxWriteDepth) != jsonscan.SameValue {
		return msg
	}
	want := msg.Copy()
	want.Payload = bytes.Trim(msg.Payload, " \t\r\n")
	return want
}

// TestJSONMarshalerPayloadShape: JSON that Go's encoding/json prints (a
// CQRS event with <, > or &) is found under "payload" as JSON, like any
// JSON payload whose value survives the server's re-printing.
func TestJSONMarshalerPayloadShape(t *testing.T) {
	event, err := json.Marshal(map[string]any{"text": "Fish & chips <3", "html": "<b>", "price": 12.5})
	require.NoError(t, err)
	require.Contains(t, string(event), `\u0026`, "encoding/json escapes &")
	data, err := JSONMarshaler{}.Marshal("t", message.NewMessage("u", event))
	require.NoError(t, err)
	var env struct {
		Payload struct{ Text string }
	}
	require.NoError(t, json.Unmarshal(data, &env))
	assert.Equal(t, "Fish & chips <3", env.Payload.Text)

	data, err = JSONMarshaler{ExactPayload: true}.Marshal("t", message.NewMessage("u", event))
	require.NoError(t, err)
	assert.Contains(t, string(data), `"payload_text":`)
}

func TestJSONMarshalerEnvelope(t *testing.T) {
	msg := message.NewMessage("id-1", []byte(`{"a":"<&>"}`))
	msg.Metadata.Set("name", "Evt")
	msg.Metadata.Set("correlation_id", "c1")
	data, err := JSONMarshaler{}.Marshal("t", msg)
	require.NoError(t, err)
	assert.Equal(t, `{"uuid":"id-1","metadata":{"correlation_id":"c1","name":"Evt"},"payload":{"a":"<&>"}}`, string(data))
	assert.Equal(t, "application/json", JSONMarshaler{}.ContentType())

	tests := []struct {
		payload string
		want    string
		exact   string // with ExactPayload, if other
	}{
		{``, `"payload_text":""`, ""},
		{`{ "a": 1 }`, `"payload":{ "a": 1 }`, `"payload_text":"{ \"a\": 1 }"`},
		{`{"a":"\u003c\u0026\u003e"}`, `"payload":{"a":"\u003c\u0026\u003e"}`, `"payload_text":"{\"a\":\"\\u003c\\u0026\\u003e\"}"`},
		{`[1.50,1E5]`, `"payload":[1.50,1E5]`, `"payload_text":"[1.50,1E5]"`},
		{"\u2028<\x01>", "\"payload_text\":\"\u2028<\\u0001>\"", ""},
		{"\xff\x00", `"payload_base64":"/wA="`, ""},
		{`12345678901234567890`, `"payload_text":"12345678901234567890"`, ""},
		{`{"a":1,"a":2}`, `"payload_text":"{\"a\":1,\"a\":2}"`, ""},
		{`{"b":1,"0":2}`, `"payload_text":"{\"b\":1,\"0\":2}"`, ""},
		{`-0`, `"payload_text":"-0"`, ""},
		{`9007199254740991`, `"payload":9007199254740991`, ""},
		{`[0.1,1e+21,1e-7]`, `"payload":[0.1,1e+21,1e-7]`, ""},
		{`{"0":1,"b":2}`, `"payload":{"0":1,"b":2}`, ""},
	}
	for _, tc := range tests {
		for mode, m := range jsonMarshalers {
			want := tc.want
			if mode == "exact" && tc.exact != "" {
				want = tc.exact
			}
			data, err := m.Marshal("t", message.NewMessage("u", []byte(tc.payload)))
			require.NoError(t, err)
			assert.Equal(t, `{"uuid":"u","metadata":{},`+want+`}`, string(data), "%s: payload %q", mode, tc.payload)
		}
	}
}

func TestJSONMarshalerRejectsInvalidUTF8(t *testing.T) {
	bad := []*message.Message{message.NewMessage("\xff", nil), message.NewMessage("u", nil), message.NewMessage("u", nil)}
	bad[1].Metadata.Set("k\xff", "v")
	bad[2].Metadata.Set("k", "v\xc3")
	for _, msg := range bad {
		_, err := JSONMarshaler{}.Marshal("t", msg)
		require.ErrorIs(t, err, ErrInvalidUTF8)
		var merr *MarshalError
		require.ErrorAs(t, err, &merr)
		assert.Equal(t, msg.UUID, merr.UUID)
	}
}

func TestJSONUnmarshalRejectsNonEnvelopes(t *testing.T) {
	inputs := []string{
		``, ` `, `null`, `42`, `"uuid"`, `[]`, `[{"uuid":"u","payload":1}]`, `{}`, `{"id":7}`,
		`{"uuid":"u"}`, `{"payload":1}`, `{"uuid":1,"payload":1}`, `{"uuid":"u","payload":1,"payload_text":"x"}`,
		`{"uuid":"u","uuid":"v","payload":1}`, `{"uuid":"u","payload_text":1}`, `{"uuid":"u","payload_base64":"!!"}`,
		`{"uuid":"u","payload":1,"metadata":[]}`, `{"uuid":"u","payload":1,"metadata":{"a":1}}`,
		`{"uuid":"u","payload":1,"metadata":{},"metadata":{}}`, `{"uuid":"u","payload":}`, `{"uuid":"u","payload":1`,
		`{"uuid":"u","payload":1}x`, `{"uuid":"u","payload":1}{}`, "{\"uuid\":\"\xff\",\"payload\":1}", `{"uuid":"u" "payload":1}`,
		`{"uuid":"u","payload":1,}`, `{"uuid":"u","payload":[1,2}`, `{"uuid":"u","payload":1,"x":tru}`, `{uuid:"u"}`,
		`{"uuid":"u","payload":` + strings.Repeat("[", jsonscan.MaxDepth+1) + strings.Repeat("]", jsonscan.MaxDepth+1) + `}`,
	}
	for _, in := range inputs {
		msg, err := JSONMarshaler{}.Unmarshal("t", []byte(in))
		require.ErrorIs(t, err, ErrInvalidEnvelope, "input %q", in)
		var uerr *UnmarshalError
		require.ErrorAs(t, err, &uerr)
		assert.LessOrEqual(t, uerr.Offset, len(in))
		assert.Nil(t, msg)
	}
}

// TestJSONUnmarshalRejectsDuplicateMetadataKeys: as FramedMarshaler does,
// an envelope with one metadata key twice is refused rather than one of
// its values silently dropped; the error names the key and points at the
// second.
func TestJSONUnmarshalRejectsDuplicateMetadataKeys(t *testing.T) {
	for _, tc := range []struct{ in, dup string }{
		{`{"uuid":"u","metadata":{"a":"1","a":"2"},"payload":1}`, `"a":"2"`},
		{`{"uuid":"u","metadata":{"a":"1","b":"x", "\u0061" : "2"},"payload":1}`, `"\u0061"`},
		{`{"uuid":"u","payload":1,"metadata":{"":"1","k":"","":""}}`, `"":""}`},
	} {
		msg, err := JSONMarshaler{}.Unmarshal("t", []byte(tc.in))
		require.ErrorIs(t, err, ErrInvalidEnvelope, tc.in)
		var uerr *UnmarshalError
		require.ErrorAs(t, err, &uerr, tc.in)
		assert.Contains(t, uerr.Reason, "duplicate metadata key", tc.in)
		assert.Equal(t, strings.LastIndex(tc.in, tc.dup), uerr.Offset, tc.in)
		assert.Nil(t, msg)
	}
	_, err := JSONMarshaler{}.Unmarshal("t", []byte(`{"uuid":"u","metadata":{"a":"1","a":"2"},"payload":1}`))
	assert.ErrorContains(t, err, `duplicate metadata key "a"`)
}

func TestJSONUnmarshalAcceptsAnyFormatting(t *testing.T) {
	in := "\n{ \"\\u0075uid\" : \"a\\u00e9\\ud83d\\ude00\\ud800\" ,\n \"future\": {\"x\":[1,2]},\n" +
		" \"metadata\" : { \"name\" : \"Evt\", \"k\":\"2\" },\n \"payload\" : [ 1 , 2 ] }\n"
	got, err := JSONMarshaler{}.Unmarshal("t", []byte(in))
	require.NoError(t, err)
	assert.Equal(t, "aé😀\uFFFD", got.UUID)
	assert.Equal(t, message.Metadata{"name": "Evt", "k": "2"}, got.Metadata)
	assert.Equal(t, "[ 1 , 2 ]", string(got.Payload))

	got, err = JSONMarshaler{}.Unmarshal("t", []byte(`{"uuid":"","payload_base64":"\/w\u0041="}`))
	require.NoError(t, err)
	assert.Equal(t, []byte{0xff, 0x00}, []byte(got.Payload))
}

func TestJSONUnmarshalDoesNotKeepData(t *testing.T) {
	msg := message.NewMessage("u", []byte(`{"a":1}`))
	msg.Metadata.Set("k", "v")
	data, err := JSONMarshaler{}.Marshal("t", msg)
	require.NoError(t, err)
	got, err := JSONMarshaler{}.Unmarshal("t", data)
	require.NoError(t, err)
	for i := range data {
		data[i] = 'X'
	}
	requireEqualMessages(t, msg, got)
}

func TestJSONMarshalerConcurrent(t *testing.T) {
	concurrentRoundTrips(t, JSONMarshaler{}, func(want, got *message.Message) error {
		if !want.Equals(got) {
			return fmt.Errorf("message %s differs", want.UUID)
		}
		return nil
	})
}

func TestJSONMarshalerAllocations(t *testing.T) {
	msg := benchMessage([]byte(`{"id":12345,"name":"order placed","items":["a","b","c"],"total":99.5,"ok":true,"note":"xxxxx"}`))
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := (JSONMarshaler{}).Marshal("t", msg); err != nil {
			t.Fatal(err)
		}
	})
	assert.LessOrEqual(t, allocs, 2.0, "Marshal allocations")
}

func TestRawJSONMarshalerRoundTrip(t *testing.T) {
	m := RawJSONMarshaler{}
	assert.Equal(t, "application/json", m.ContentType())
	for _, p := range []string{`{"a":1}`, ` [1, 2] `, `"héllo 😀"`, `0`, `null`, `{"headers":{"x":"y"}}`} {
		msg := message.NewMessage("ignored", []byte(p))
		msg.Metadata.Set("name", "ignored")
		data, err := m.Marshal("t", msg)
		require.NoError(t, err)
		assert.Equal(t, p, string(data))
		assert.Equal(t, len(data), cap(data), "appending to the result must not write into the payload")
		got, err := m.Unmarshal("t", data)
		require.NoError(t, err)
		assert.Equal(t, p, string(got.Payload))
		assert.NotEmpty(t, got.UUID)
		assert.NotEqual(t, msg.UUID, got.UUID)
		assert.Empty(t, got.Metadata)
	}
}

func TestRawJSONMarshalerRejectsNonJSON(t *testing.T) {
	for _, p := range []string{``, ` `, `{`, `{"a":1}{}`, `hello`, "\"\xff\"", `[1,]`, `'x'`, "\ufeff1",
		strings.Repeat("[", jsonscan.MaxWriteDepth+1) + strings.Repeat("]", jsonscan.MaxWriteDepth+1)} {
		_, err := RawJSONMarshaler{}.Marshal("t", message.NewMessage("u", []byte(p)))
		require.ErrorIs(t, err, ErrPayloadNotJSON, "payload %q", p)
		var merr *MarshalError
		require.ErrorAs(t, err, &merr)
		assert.Equal(t, "u", merr.UUID)

		_, err = RawJSONMarshaler{}.Unmarshal("t", []byte(p))
		if len(p) < jsonscan.MaxWriteDepth { // deep JSON reads fine, it only cannot be written
			var uerr *UnmarshalError
			require.ErrorAs(t, err, &uerr, "data %q", p)
			require.ErrorIs(t, err, ErrPayloadNotJSON)
		}
	}
}

func TestRawJSONMarshalerConcurrent(t *testing.T) {
	concurrentRoundTrips(t, RawJSONMarshaler{}, func(want, got *message.Message) error {
		if string(want.Payload) != string(got.Payload) || len(got.Metadata) != 0 || got.UUID == "" {
			return fmt.Errorf("message %s differs", want.UUID)
		}
		return nil
	})
}

func benchMessage(payload []byte) *message.Message {
	msg := message.NewMessage(watermill.NewUUID(), payload)
	msg.Metadata.Set("name", "OrderPlaced")
	msg.Metadata.Set("correlation_id", watermill.NewUUID())
	return msg
}

var benchPayloads = map[string][]byte{
	"json": []byte(`{"id":12345,"name":"order placed","items":["a","b","c"],"total":99.5,"ok":true,"note":"xxxxxxx"}`),
	"text": bytes.Repeat([]byte("log line "), 12)[:100],
}

func BenchmarkJSONMarshal(b *testing.B) {
	for name, p := range benchPayloads {
		b.Run(name, func(b *testing.B) {
			msg := benchMessage(p)
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				if _, err := (JSONMarshaler{}).Marshal("t", msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkJSONUnmarshal(b *testing.B) {
	for name, p := range benchPayloads {
		b.Run(name, func(b *testing.B) {
			data, err := JSONMarshaler{}.Marshal("t", benchMessage(p))
			require.NoError(b, err)
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				if _, err := (JSONMarshaler{}).Unmarshal("t", data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func FuzzJSONUnmarshal(f *testing.F) {
	for _, s := range []string{
		`{"uuid":"u","metadata":{"name":"x"},"payload":{"a":[1,2]}}`,
		`{"uuid":"","metadata":{},"payload_text":"a\nb"}`,
		`{"uuid":"u","payload_base64":"/wA="}`,
		` { "uuid" : "\ud83d\ude00" , "payload" : null } `,
		`{"id":7}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := JSONMarshaler{}
		msg, err := m.Unmarshal("t", data)
		if err != nil {
			var uerr *UnmarshalError
			if !errors.Is(err, ErrInvalidEnvelope) || !errors.As(err, &uerr) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// Whatever decodes must survive our own encoding.
		again, err := m.Marshal("t", msg)
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		back, err := m.Unmarshal("t", again)
		if err != nil {
			t.Fatalf("re-unmarshal %s: %v", again, err)
		}
		requireEqualMessages(t, roundTripped(m, msg), back)
	})
}

func FuzzJSONRoundTrip(f *testing.F) {
	f.Add("uuid", "name", "Evt", []byte(`{"a":1}`))
	f.Add("", "", "", []byte{})
	f.Add("u", "0", "\u2028", []byte("{ \"a\": 1 }"))
	f.Add("u", "k", "v", []byte("\xff\n"))
	f.Add("u", "k", "v", []byte(`[1e21,"\u0041",{"0":1}]`))
	f.Fuzz(func(t *testing.T, uuid, key, value string, payload []byte) {
		msg := message.NewMessage(uuid, payload)
		msg.Metadata.Set(key, value)
		for _, m := range []JSONMarshaler{{}, {ExactPayload: true}} {
			data, err := m.Marshal("t", msg)
			if err != nil {
				if !errors.Is(err, ErrInvalidUTF8) || utf8.ValidString(uuid) && utf8.ValidString(key) && utf8.ValidString(value) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var env map[string]json.RawMessage
			if err := json.Unmarshal(data, &env); err != nil {
				t.Fatalf("envelope is not JSON: %q", data)
			}
			_, asJSON := env["payload"]
			switch jsonscan.Classify(payload, jsonscan.MaxWriteDepth) {
			case jsonscan.SameBytes:
				// Canonical text is at least valid compact JSON.
				var compact bytes.Buffer
				if err := json.Compact(&compact, payload); err != nil || !bytes.Equal(compact.Bytes(), payload) {
					t.Fatalf("canonical payload %q is not compact JSON", payload)
				}
				require.True(t, asJSON, "%s", data)
			case jsonscan.SameValue:
				require.Equal(t, !m.ExactPayload, asJSON, "%s", data)
			default:
				require.False(t, asJSON, "%s", data)
			}
			got, err := m.Unmarshal("t", data)
			if err != nil {
				t.Fatalf("unmarshal %q: %v", data, err)
			}
			requireEqualMessages(t, roundTripped(m, msg), got)
		}
	})
}

func FuzzRawJSONUnmarshal(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e3,"x\u0041"]}`, ` null `, `[`, "\"\xff\"", `{"a":1,}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := RawJSONMarshaler{}.Unmarshal("t", data)
		valid := json.Valid(data) && utf8.Valid(data)
		if err != nil {
			var uerr *UnmarshalError
			if !errors.Is(err, ErrPayloadNotJSON) || !errors.As(err, &uerr) {
				t.Fatalf("untyped error %v", err)
			}
			if valid {
				t.Fatalf("rejected valid JSON %q: %v", data, err)
			}
			return
		}
		if !valid {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		if string(msg.Payload) != string(data) {
			t.Fatal("payload differs from data")
		}
	})
}
