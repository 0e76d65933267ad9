package durablestreams

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/cloudevents"
)

// ceMessages are the tricky messages with what a CloudEvent requires.
func ceMessages() []namedMessage {
	var out []namedMessage
	for _, tc := range trickyMessages() {
		if tc.msg.UUID == "" {
			continue
		}
		if tc.msg.Metadata.Get("name") == "" {
			tc.msg.Metadata.Set("name", "Evt")
		}
		out = append(out, tc)
	}
	extra := message.NewMessage(watermill.NewUUID(), []byte("<xml/>"))
	extra.Metadata = message.Metadata{
		"name": "x.y", "ce_source": "urn:other", "ce_time": "2026-12-01T09:00:00.123Z", "ce_subject": "s",
		"ce_dataschema": "https://example.com/s", "ce_datacontenttype": "application/xml",
		"id": "meta id", "data": "d", "zz": "z", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
	jsonAsText := message.NewMessage(watermill.NewUUID(), []byte(`{"a":1}`))
	jsonAsText.Metadata = message.Metadata{"name": "t", "ce_datacontenttype": "text/plain"}
	textAsJSON := message.NewMessage(watermill.NewUUID(), []byte(`plain`))
	textAsJSON.Metadata = message.Metadata{"name": "t", "ce_datacontenttype": "application/json"}
	return append(out, namedMessage{"ce attributes", extra}, namedMessage{"json as text", jsonAsText}, namedMessage{"text as json", textAsJSON})
}

var ceMarshalers = map[string]CloudEventsMarshaler{
	"default": {Source: "/orders"},
	"exact":   {Source: "/orders", ExactPayload: true},
}

func TestCloudEventsMarshalerRoundTrip(t *testing.T) {
	for mode, m := range ceMarshalers {
		for _, tc := range ceMessages() {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				data, err := m.Marshal("topic", tc.msg)
				require.NoError(t, err)
				require.True(t, json.Valid(data), "event is not JSON: %.300s", data)
				got, err := m.Unmarshal("topic", data)
				require.NoError(t, err, "%.300s", data)
				requireEqualMessages(t, ceRoundTripped(m, tc.msg), got)
			})
		}
	}
}

// ceRoundTripped is msg as Unmarshal returns it: whitespace around a JSON
// payload's value goes, and a "ce_source" equal to Source or a
// "ce_datacontenttype" equal to the one chosen anyway says nothing.
func ceRoundTripped(m CloudEventsMarshaler, msg *message.Message) *message.Message {
	want := roundTripped(JSONMarshaler{ExactPayload: m.ExactPayload}, msg)
	if ct, ok := want.Metadata[cloudevents.KeyDataContentType]; ok && !cloudevents.IsJSONContentType(ct) {
		want.Payload = msg.Payload // written as a string or base64
	}
	if want.Metadata[cloudevents.KeySource] == m.Source || want.Metadata[cloudevents.KeyDataContentType] == chosenContentType(m, want.Payload) {
		want = want.Copy()
		if want.Metadata[cloudevents.KeySource] == m.Source {
			delete(want.Metadata, cloudevents.KeySource)
		}
		if want.Metadata[cloudevents.KeyDataContentType] == chosenContentType(m, want.Payload) {
			delete(want.Metadata, cloudevents.KeyDataContentType)
		}
	}
	return want
}

func chosenContentType(m CloudEventsMarshaler, p []byte) string {
	_, ct := m.codec().PayloadForm(p)
	return ct
}

func TestCloudEventsMarshalerEvent(t *testing.T) {
	msg := message.NewMessage("id-1", []byte(`{"a":"<&>"}`))
	msg.Metadata = message.Metadata{"name": "OrderPlaced", "correlation_id": "c1", "ce_time": "2026-12-01T09:00:00Z"}
	data, err := CloudEventsMarshaler{Source: "/orders"}.Marshal("t", msg)
	require.NoError(t, err)
	assert.Equal(t, `{"specversion":"1.0","id":"id-1","source":"/orders","type":"OrderPlaced","time":"2026-12-01T09:00:00Z",`+
		`"datacontenttype":"application/json","data":{"a":"<&>"},"correlationz5fid":"c1"}`, string(data))

	tests := []struct{ payload, want string }{
		{`plain`, `"datacontenttype":"text/plain; charset=utf-8","data":"plain"`},
		{"\xff", `"datacontenttype":"application/octet-stream","data_base64":"/w=="`},
		{`12345678901234567890`, `"datacontenttype":"application/json","data_base64":"MTIzNDU2Nzg5MDEyMzQ1Njc4OTA="`},
		{`{ "a": 1 }`, `"datacontenttype":"application/json","data":{ "a": 1 }`},
	}
	for _, tc := range tests {
		msg := message.NewMessage("u", []byte(tc.payload))
		msg.Metadata.Set("name", "T")
		data, err := CloudEventsMarshaler{Source: "s", TypeKey: "name"}.Marshal("t", msg)
		require.NoError(t, err)
		assert.Equal(t, `{"specversion":"1.0","id":"u","source":"s","type":"T",`+tc.want+`}`, string(data))
	}
}

func TestCloudEventsMarshalerErrors(t *testing.T) {
	typed := func(uuid string, md message.Metadata) *message.Message {
		msg := message.NewMessage(uuid, nil)
		msg.Metadata = md
		return msg
	}
	bad := map[string]*message.Message{
		"no uuid":      typed("", message.Metadata{"name": "x"}),
		"no type":      typed("u", nil),
		"empty type":   typed("u", message.Metadata{"name": ""}),
		"bad time":     typed("u", message.Metadata{"name": "x", "ce_time": "yesterday"}),
		"empty source": typed("u", message.Metadata{"name": "x", "ce_source": ""}),
	}
	for name, msg := range bad {
		_, err := CloudEventsMarshaler{Source: "/s"}.Marshal("t", msg)
		require.ErrorIs(t, err, ErrInvalidCloudEvent, name)
		var merr *MarshalError
		require.ErrorAs(t, err, &merr, name)
	}
	_, err := CloudEventsMarshaler{}.Marshal("t", typed("u", message.Metadata{"name": "x"}))
	require.ErrorIs(t, err, ErrInvalidCloudEvent, "no Source")
	_, err = CloudEventsMarshaler{Source: "s"}.Marshal("t", typed("u", message.Metadata{"name": "x", "k": "\xff"}))
	require.ErrorIs(t, err, ErrInvalidUTF8)

	notEvents := []string{
		``, `[]`, `{}`, `{"specversion":"1.0","id":"u","source":"s"}`, `{"specversion":"0.3","id":"u","source":"s","type":"t"}`,
		`{"specversion":"1.0","id":"","source":"s","type":"t"}`, `{"specversion":"1.0","id":1,"source":"s","type":"t"}`,
		`{"specversion":"1.0","id":"u","source":"s","type":"t","data":1,"data_base64":"AA=="}`,
		`{"specversion":"1.0","id":"u","source":"s","type":"t","data_base64":"!"}`,
		`{"specversion":"1.0","id":"u","source":"s","type":"t","data_base64":1}`,
		`{"specversion":"1.0","id":"u","source":"s","type":"t","x":{}}`, `{"specversion":"1.0","id":"u","id":"v","source":"s","type":"t"}`,
		`{"specversion":"1.0","id":"u","source":"s","type":"t"`, `{"specversion":"1.0","id":"u","source":"s","type":"t"}x`,
		`{"specversion":"1.0","id":"u","source":"s","type":"t",}`, "{\"specversion\":\"1.0\",\"id\":\"\xff\",\"source\":\"s\",\"type\":\"t\"}",
	}
	for _, in := range notEvents {
		msg, err := CloudEventsMarshaler{}.Unmarshal("t", []byte(in))
		require.ErrorIs(t, err, ErrInvalidCloudEvent, "%q", in)
		var uerr *UnmarshalError
		require.ErrorAs(t, err, &uerr)
		assert.Nil(t, msg)
	}
}

func TestCloudEventsMarshalerReadsForeignEvents(t *testing.T) {
	in := `{ "specversion" : "1.0", "id":"e1", "source":"urn:x", "type":"com.example.t", "subject":null, "comexampleextension1":"value",
		"num":42, "flag":true, "data":{"x":[1, 2]} }`
	msg, err := CloudEventsMarshaler{Source: "/mine", TypeKey: "event_type"}.Unmarshal("t", []byte(in))
	require.NoError(t, err)
	assert.Equal(t, "e1", msg.UUID)
	assert.Equal(t, `{"x":[1, 2]}`, string(msg.Payload))
	assert.Equal(t, message.Metadata{"event_type": "com.example.t", "ce_source": "urn:x", "comexampleextension1": "value", "num": "42", "flag": "true"}, msg.Metadata)

	msg, err = CloudEventsMarshaler{}.Unmarshal("t", []byte(`{"specversion":"1.0","id":"e","source":"s","type":"t","datacontenttype":"text/csv","data":"a,b\n"}`))
	require.NoError(t, err)
	assert.Equal(t, "a,b\n", string(msg.Payload))
	assert.Equal(t, "text/csv", msg.Metadata.Get("ce_datacontenttype"))
}

func TestCloudEventsMarshalerConcurrent(t *testing.T) {
	m := CloudEventsMarshaler{Source: "/s"}
	concurrentRoundTrips(t, ceTyped{m}, func(want, got *message.Message) error {
		want = want.Copy()
		want.Metadata.Set("name", "T")
		if !want.Equals(got) {
			return errors.New("message " + want.UUID + " differs")
		}
		return nil
	})
}

// ceTyped sets the event type concurrentRoundTrips' messages lack, on a
// copy.
type ceTyped struct{ CloudEventsMarshaler }

func (c ceTyped) Marshal(topic string, msg *message.Message) ([]byte, error) {
	msg = msg.Copy()
	msg.Metadata.Set("name", "T")
	return c.CloudEventsMarshaler.Marshal(topic, msg)
}

func FuzzCloudEventsRoundTrip(f *testing.F) {
	f.Add("uuid", "correlation_id", "c1", "OrderPlaced", []byte(`{"a":1}`))
	f.Add("u", "ce_time", "2026-12-01T09:00:00Z", "t", []byte("text"))
	f.Add("u", "ce_datacontenttype", "text/plain", "t", []byte(`"json string"`))
	f.Add("u", "zz", "", "t", []byte{0xff})
	f.Add("u", "", "v", "t", []byte(`{ "a": [1E5] }`))
	f.Fuzz(func(t *testing.T, uuid, key, value, typ string, payload []byte) {
		msg := message.NewMessage(uuid, payload)
		msg.Metadata.Set(key, value)
		msg.Metadata.Set("name", typ)
		for _, m := range ceMarshalers {
			data, err := m.Marshal("t", msg)
			if err != nil {
				if !errors.Is(err, ErrInvalidCloudEvent) && !errors.Is(err, ErrInvalidUTF8) {
					t.Fatalf("untyped error %v", err)
				}
				if errors.Is(err, ErrInvalidUTF8) && utf8.ValidString(uuid) && utf8.ValidString(key) && utf8.ValidString(value) && utf8.ValidString(typ) {
					t.Fatalf("UTF-8 error for valid UTF-8: %v", err)
				}
				return
			}
			if !json.Valid(data) {
				t.Fatalf("event is not JSON: %q", data)
			}
			got, err := m.Unmarshal("t", data)
			if err != nil {
				t.Fatalf("unmarshal %q: %v", data, err)
			}
			requireEqualMessages(t, ceRoundTripped(m, msg), got)
		}
	})
}

func FuzzCloudEventsUnmarshal(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","id":"u","source":"s","type":"t","data":{"a":1},"x":"y"}`))
	f.Add([]byte(`{"specversion":"1.0","id":"u","source":"s","type":"t","datacontenttype":"text/plain","data":"a"}`))
	f.Add([]byte(`{"specversion":"1.0","id":"u","source":"s","type":"t","data_base64":"/w==","n":1}`))
	f.Add([]byte(`{"specversion":"1.0","id":"u","source":"s","type":"t","cez5fsource":"/evil","cez5ftime":"x","name":"n"}`))
	f.Add([]byte(`{"specversion":"1.0","id":"u","source":"s","type":"t","zq1":"a","z7aq1":"b"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m := CloudEventsMarshaler{Source: "s"}
		msg, err := m.Unmarshal("t", data)
		if err != nil {
			var uerr *UnmarshalError
			if !errors.Is(err, ErrInvalidCloudEvent) || !errors.As(err, &uerr) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// Whatever decodes must survive our own encoding.
		again, err := m.Marshal("t", msg)
		if err != nil {
			if strings.Contains(err.Error(), "time") {
				return // a foreign time that is not RFC 3339
			}
			t.Fatalf("re-marshal: %v", err)
		}
		back, err := m.Unmarshal("t", again)
		if err != nil {
			t.Fatalf("re-unmarshal %s: %v", again, err)
		}
		requireEqualMessages(t, ceRoundTripped(m, msg), back)
	})
}

// TestCloudEventsMarshalerExtensionsCannotShadowAttributes: an extension
// whose name decodes to a key the marshaler keeps for an attribute of its
// own keeps its raw name as its key, so that the attribute wins and the
// message marshals again; an extension named as TypeKey loses to the type.
func TestCloudEventsMarshalerExtensionsCannotShadowAttributes(t *testing.T) {
	in := `{"specversion":"1.0","id":"e1","source":"/orders","type":"T","cez5fsource":"/evil","cez5ftime":"not a time",` +
		`"cez5fsubject":"s","cez5fdataschema":"d","cez5fdatacontenttype":"c","subject":"real","data":1}`
	m := CloudEventsMarshaler{Source: "/orders"}
	msg, err := m.Unmarshal("t", []byte(in))
	require.NoError(t, err)
	assert.Equal(t, message.Metadata{
		"name": "T", "ce_subject": "real",
		"cez5fsource": "/evil", "cez5ftime": "not a time", "cez5fsubject": "s", "cez5fdataschema": "d", "cez5fdatacontenttype": "c",
	}, msg.Metadata)
	again, err := m.Marshal("t", msg)
	require.NoError(t, err)
	back, err := m.Unmarshal("t", again)
	require.NoError(t, err)
	requireEqualMessages(t, msg, back)

	// A custom TypeKey, escaped.
	msg, err = CloudEventsMarshaler{TypeKey: "event_type"}.Unmarshal("t",
		[]byte(`{"specversion":"1.0","id":"e1","source":"s","type":"T","eventz5ftype":"evil"}`))
	require.NoError(t, err)
	assert.Equal(t, message.Metadata{"event_type": "T", "ce_source": "s", "eventz5ftype": "evil"}, msg.Metadata)
	// An extension literally named as the TypeKey: the type wins.
	msg, err = CloudEventsMarshaler{Source: "s"}.Unmarshal("t",
		[]byte(`{"specversion":"1.0","id":"e1","source":"s","type":"T","name":"evil"}`))
	require.NoError(t, err)
	assert.Equal(t, message.Metadata{"name": "T"}, msg.Metadata)
	// An extension named as such a key itself is no valid attribute name.
	for _, name := range []string{"ce_source", "ce_time", "ce_subject", "ce_dataschema", "ce_datacontenttype"} {
		_, err = CloudEventsMarshaler{Source: "s"}.Unmarshal("t",
			[]byte(`{"specversion":"1.0","id":"e1","source":"s","type":"T","`+name+`":"x"}`))
		require.ErrorIs(t, err, ErrInvalidCloudEvent, name)
	}
}

// TestCloudEventsMarshalerRefusesCollidingExtensions: two extension names
// that decode to one metadata key cannot come from this marshaler; the
// event is refused rather than one value silently lost.
func TestCloudEventsMarshalerRefusesCollidingExtensions(t *testing.T) {
	for _, in := range []string{
		`{"specversion":"1.0","id":"e1","source":"s","type":"T","zq1":"a","z7aq1":"b"}`,
		`{"specversion":"1.0","id":"e1","source":"s","type":"T","z7aq1":"b","zq1":"a"}`,
		`{"specversion":"1.0","id":"e1","source":"s","type":"T","cez5fsource":"a","cez7a5fsource":"b"}`,
	} {
		msg, err := CloudEventsMarshaler{Source: "s"}.Unmarshal("t", []byte(in))
		require.ErrorIs(t, err, ErrInvalidCloudEvent, in)
		var uerr *UnmarshalError
		require.ErrorAs(t, err, &uerr, in)
		assert.Nil(t, msg)
		assert.Regexp(t, `"(zq1|cez5fsource)"`, uerr.Reason, in)
		assert.Regexp(t, `"(z7aq1|cez7a5fsource)"`, uerr.Reason, in)
	}
}
