package durablestreams

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/durablestreams/watermill-durablestreams/internal/defaults"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests prove against the reference server, which re-prints JSON
// with JavaScript, that what the marshalers write comes back unchanged.

func serverDo(t *testing.T, method, url, contentType string, body []byte) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Less(t, resp.StatusCode, 300, "%s %s: %d %s", method, url, resp.StatusCode, data)
	return data
}

// jsonRoundTrip appends values (each one JSON value) to a new JSON-mode
// stream in one request and returns the values the server reads back.
func jsonRoundTrip(t *testing.T, values [][]byte) []json.RawMessage {
	t.Helper()
	url := dstest.StreamURL(t)
	serverDo(t, http.MethodPut, url, "application/json", nil)
	body := append([]byte{'['}, bytes.Join(values, []byte{','})...)
	serverDo(t, http.MethodPost, url, "application/json", append(body, ']'))
	var got []json.RawMessage
	require.NoError(t, json.Unmarshal(serverDo(t, http.MethodGet, url+"?offset=-1", "", nil), &got))
	require.Len(t, got, len(values))
	return got
}

func TestJSONMarshalerThroughReferenceServer(t *testing.T) {
	var msgs []namedMessage
	for _, tc := range trickyMessages() {
		if !strings.HasPrefix(tc.name, "large") {
			msgs = append(msgs, tc)
		}
	}
	extra := []string{`{"price":12.5,"qty":3,"tiny":1e-7,"huge":1e+21}`, "[1,\n2]", `{"n":1e400}`, `{"a":"\u00e9"}`, `{"0":"a","b":"c"}`}
	for _, p := range extra {
		msgs = append(msgs, namedMessage{p, message.NewMessage("extra", []byte(p))})
	}
	for mode, m := range jsonMarshalers {
		envelopes := make([][]byte, len(msgs))
		for i, tc := range msgs {
			var err error
			envelopes[i], err = m.Marshal("t", tc.msg)
			require.NoError(t, err)
		}
		for i, raw := range jsonRoundTrip(t, envelopes) {
			sent := msgs[i].msg
			got, err := m.Unmarshal("t", raw)
			require.NoError(t, err, msgs[i].name)
			if m.ExactPayload || jsCanonical(sent.Payload) {
				if !sent.Equals(got) {
					t.Errorf("%s %s: sent %s, read back %s", mode, msgs[i].name, envelopes[i], raw)
				}
				continue
			}
			// The server may re-print the payload: same value, other bytes.
			assert.Equal(t, sent.UUID, got.UUID)
			assert.Equal(t, sent.Metadata, got.Metadata)
			requireSameJSONValue(t, sent.Payload, got.Payload)
		}
	}
}

// requireSameJSONValue: got is want or the same JSON value printed
// otherwise, as a Go reader sees it.
func requireSameJSONValue(t *testing.T, want, got []byte) {
	t.Helper()
	if bytes.Equal(want, got) {
		return
	}
	var w, g any
	require.NoError(t, json.Unmarshal(want, &w), "%s", want)
	require.NoError(t, json.Unmarshal(got, &g), "%s", got)
	require.Equal(t, w, g, "sent %s, read back %s", want, got)
}

// TestJSCanonicalAgreesWithReferenceServer: jsonscan.Classify's answers
// SameBytes and SameValue hold for what the reference server's JavaScript
// does to random and edge-case JSON.
func TestJSCanonicalAgreesWithReferenceServer(t *testing.T) {
	dstest.SkipIfExternal(t, "checks the reference server's JavaScript re-printing")
	// Exact: jsCanonical is true exactly when the server keeps the bytes.
	exact := []string{
		`0`, `-0`, `-1`, `1.5`, `1.50`, `1E5`, `1e5`, `1e21`, `1e+21`, `1e-7`, `0.0000001`, `0.000001`,
		`9007199254740992`, `9007199254740993`, `12345678901234567890`, `123456789012345680000`, `5e-324`,
		`1.7976931348623157e+308`, `0.1`, `0.30000000000000004`, `"<&>\u2028é😀"`, `"\u0041"`, `"\u001F"`,
		`"\u001f"`, `"\u000a"`, `"\n"`, `"\/"`, "\"\x7f\"", `"\ud83d\ude00"`, `[1, 2]`, `{"a":1,"a":2}`,
		`{"b":1,"0":2}`, `{"__proto__":1,"a":[]}`, `{"01":1,"-1":2,"1.5":3}`, `true`, `null`, `{}`, `[]`,
		`{"0":1}`, `{"0":1,"1":2,"a":3}`, `{"1":1,"0":2}`, `{"10":1,"9":2}`, `{"4294967295":1}`, `{"4294967294":1,"a":2}`,
	}
	// Conservative: the server keeps them, but jsCanonical says no.
	conservative := []string{`"\ud800"`, `{"a":1,"4294967295":2}`}

	values := append(append([]string{}, exact...), conservative...)
	values = append(values, randomJSONValues(2000)...)
	raw := make([][]byte, len(values))
	for i, v := range values {
		raw[i] = []byte(v)
	}
	got := jsonRoundTrip(t, raw)
	for i, v := range values {
		kept := string(got[i]) == v
		switch {
		case i < len(exact):
			assert.Equal(t, kept, jsCanonical([]byte(v)), "%s: server returned %s", v, got[i])
		case i < len(exact)+len(conservative):
			assert.True(t, kept, "%s: server returned %s", v, got[i])
			assert.False(t, jsCanonical([]byte(v)), v)
		case jsCanonical([]byte(v)):
			assert.True(t, kept, "canonical %s: server returned %s", v, got[i])
		}
		if r := jsonscan.Classify([]byte(v), jsonscan.MaxWriteDepth); r == jsonscan.SameValue || r == jsonscan.SameBytes {
			requireSameJSONValue(t, []byte(v), got[i])
		}
	}
}

// randomJSONValues builds nested values from atoms that JavaScript prints
// differently or the same.
func randomJSONValues(n int) []string {
	r := rand.New(rand.NewPCG(7, 11))
	atoms := []string{`0`, `-0`, `7`, `1.5`, `1e5`, `1e21`, `1e-7`, `0.1`, `12345678901234567890`, `"a"`, `"\u0041"`,
		`"\u001f"`, `"\n"`, `"\/"`, `"é"`, `"<&>"`, `"\ud83d\ude00"`, `"😀"`, `true`, `null`, `""`}
	keys := []string{`"a"`, `"b"`, `"0"`, `"1"`, `"01"`, `"__proto__"`, `""`, `"a"`}
	var gen func(depth int) string
	gen = func(depth int) string {
		k := r.IntN(10)
		if depth > 3 || k < 4 {
			return atoms[r.IntN(len(atoms))]
		}
		parts := make([]string, r.IntN(4))
		for i := range parts {
			parts[i] = gen(depth + 1)
			if k >= 7 {
				parts[i] = keys[r.IntN(len(keys))] + ":" + parts[i]
			}
		}
		sep := ","
		if r.IntN(10) == 0 {
			sep = ", "
		}
		if k >= 7 {
			return "{" + strings.Join(parts, sep) + "}"
		}
		return "[" + strings.Join(parts, sep) + "]"
	}
	out := make([]string, n)
	for i := range out {
		out[i] = gen(0)
	}
	return out
}

func TestFramedMarshalerThroughReferenceServer(t *testing.T) {
	url := dstest.StreamURL(t)
	m := FramedMarshaler{}
	serverDo(t, http.MethodPut, url, m.ContentType(), nil)
	msgs := trickyMessages()
	var body []byte
	for _, tc := range msgs {
		data, err := m.Marshal("t", tc.msg)
		require.NoError(t, err)
		body = append(body, data...)
	}
	serverDo(t, http.MethodPost, url, m.ContentType(), body)
	frames, err := splitAll(m, serverDo(t, http.MethodGet, url+"?offset=-1", "", nil), 1<<16, defaults.MaxFrameBytes)
	require.NoError(t, err)
	require.Len(t, frames, len(msgs))
	for i, frame := range frames {
		got, err := m.Unmarshal("t", frame)
		require.NoError(t, err)
		requireEqualMessages(t, msgs[i].msg, got)
	}
}
