package reader

import (
	"errors"
	"net/http"
	"testing"

	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

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
		ea, errA := jsonscan.SplitArray(a)
		eb, errB := jsonscan.SplitArray(b)
		if errA != nil || errB != nil {
			return // the join does not validate the inside of its parts
		}
		all, err := jsonscan.SplitArray(joined)
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
