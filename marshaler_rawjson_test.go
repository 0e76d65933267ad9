package durablestreams

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
		strings.Repeat("[", maxWriteDepth+1) + strings.Repeat("]", maxWriteDepth+1)} {
		_, err := RawJSONMarshaler{}.Marshal("t", message.NewMessage("u", []byte(p)))
		require.ErrorIs(t, err, ErrPayloadNotJSON, "payload %q", p)
		var merr *MarshalError
		require.ErrorAs(t, err, &merr)
		assert.Equal(t, "u", merr.UUID)

		_, err = RawJSONMarshaler{}.Unmarshal("t", []byte(p))
		if len(p) < maxWriteDepth { // deep JSON reads fine, it only cannot be written
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
