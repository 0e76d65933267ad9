package reader

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

func FuzzSplitJSONArray(f *testing.F) {
	f.Add([]byte(`[1,"a",{"b":[2]},null]`))
	f.Add([]byte(` [] `))
	f.Fuzz(func(t *testing.T, body []byte) {
		elems, err := SplitJSONArray(body)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		for _, e := range elems {
			if !json.Valid(e) {
				t.Fatalf("element %q is not JSON", e)
			}
		}
	})
}

// FuzzSplitJSONArrayMatchesEncodingJSON: the one-pass splitter accepts
// exactly what encoding/json accepts, and cuts the same elements.
func FuzzSplitJSONArrayMatchesEncodingJSON(f *testing.F) {
	for _, seed := range []string{`[1,"a\u00e9",{"b":[2,-0.5e+3]},null,true,false]`, ` [ ] `, `[01]`, `[1,]`,
		`["\x"]`, `[{"a" 1}]`, `[1e]`, `[-]`, "[\"\x01\"]", `[[[[]]]]`, `[1]x`, `{}`, `[tru]`, `["\ud800"]`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := SplitJSONArray(body)
		var want []json.RawMessage
		wantErr := json.Unmarshal(body, &want)
		if len(bytes.Trim(body, " \t\r\n")) == 0 { // JSON's whitespace only
			require.NoError(t, err)
			require.Empty(t, got)
			return
		}
		if wantErr != nil {
			require.ErrorIs(t, err, ErrProtocol, "encoding/json rejects %q: %v", body, wantErr)
			return
		}
		require.NoError(t, err, "encoding/json accepts %q", body)
		require.Len(t, got, len(want))
		for i := range want {
			require.Equal(t, string(want[i]), string(got[i]))
		}
	})
}

func FuzzJoinJSONArrays(f *testing.F) {
	f.Add([]byte(`[1,2]`), []byte(`["x"]`))
	f.Add([]byte(`[]`), []byte(` [ {"a":1} ] `))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		joined, err := joinJSONArrays([][]byte{a, b})
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		ea, errA := SplitJSONArray(a)
		eb, errB := SplitJSONArray(b)
		if errA != nil || errB != nil {
			return // the join does not validate the inside of its parts
		}
		all, err := SplitJSONArray(joined)
		if err != nil || len(all) != len(ea)+len(eb) {
			t.Fatalf("joined %q: %d elements, err %v; want %d", joined, len(all), err, len(ea)+len(eb))
		}
	})
}

func FuzzParseSSE(f *testing.F) {
	f.Add([]byte("event: data\ndata:[1]\n\nevent: control\ndata:{\"streamNextOffset\":\"1_2\",\"upToDate\":true}\n\n"))
	f.Add([]byte(": comment\r\nevent:data\r\ndata: a\r\ndata: b\r\n\r\nid: 3\nretry: 5\n\n"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		const max = 1 << 10
		events, err := parseSSE(stream, max)
		if err != nil && !errors.Is(err, ErrBodyTooLarge) {
			t.Fatalf("untyped error %v", err)
		}
		for _, ev := range events {
			if len(ev.Data) > max+2 || len(ev.Data) > len(stream) {
				t.Fatalf("event data of %d bytes from %d input bytes", len(ev.Data), len(stream))
			}
			if ev.Type == "control" {
				if c, err := parseControl(ev.Data); err == nil && validateOffset(c.StreamNextOffset) != nil {
					t.Fatalf("accepted bad offset %q", c.StreamNextOffset)
				}
			}
		}
	})
}

func FuzzParseReadHeaders(f *testing.F) {
	f.Add("0000000000000000_0000000000000012", "1234", "true", "")
	f.Add("", "", "TRUE", "true")
	f.Add("1_2 ", "a\x00", "yes", "false")
	f.Fuzz(func(t *testing.T, next, cursor, upToDate, closed string) {
		h := http.Header{}
		h.Set(protocol.HeaderNextOffset, next)
		h.Set(protocol.HeaderCursor, cursor)
		h.Set(protocol.HeaderUpToDate, upToDate)
		h.Set(protocol.HeaderClosed, closed)
		got, err := parseReadHeaders(h)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if got.NextOffset == "" || got.NextOffset != h.Get(protocol.HeaderNextOffset) {
			t.Fatalf("offset %q from header %q", got.NextOffset, next)
		}
		for _, b := range []byte(got.NextOffset + got.Cursor) {
			if b <= ' ' || b >= 0x7f {
				t.Fatalf("unsafe value accepted: %q %q", got.NextOffset, got.Cursor)
			}
		}
	})
}

// BenchmarkSplitJSONArray splits a body of 10,000 envelopes like the
// Subscriber reads them.
func BenchmarkSplitJSONArray(b *testing.B) {
	elem := `{"uuid":"0b3e7c4a-4f0e-4a5e-9a7e-2f1f6c9d8e7a","metadata":{"k":"v"},"payload":"` + strings.Repeat("x", 98) + `"}`
	body := []byte("[" + strings.Repeat(elem+",", 9999) + elem + "]")
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		elems, err := SplitJSONArray(body)
		if err != nil || len(elems) != 10000 {
			b.Fatal(len(elems), err)
		}
	}
}
