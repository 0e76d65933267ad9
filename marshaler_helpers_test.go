package durablestreams

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
)

// jsCanonical: JavaScript prints payload exactly so; the reference server
// keeps such JSON byte for byte.
func jsCanonical(payload []byte) bool {
	return jsonscan.Classify(payload, jsonscan.MaxWriteDepth) == jsonscan.SameBytes
}

// trickyPayloads are payloads every byte-exact marshaler must keep.
func trickyPayloads() map[string][]byte {
	large := bytes.Repeat([]byte("0123456789abcdef\x00\xff\n"), 1<<16)
	return map[string][]byte{
		"nil":             nil,
		"empty":           {},
		"newlines":        []byte("a\nb\r\nc\n"),
		"binary":          {0x00, 0xff, 0xfe, 0x80, 0x01, '\n', 0x7f},
		"invalid utf8":    []byte("abc\xc3\x28def"),
		"unicode":         []byte("héllo wörld 😀 \u2028\u2029 ключ"),
		"large":           large,
		"json canonical":  []byte(`{"id":7,"name":"x","tags":["a","b"],"ok":true,"n":null,"f":1.5}`),
		"json whitespace": []byte("{ \"id\": 7 }\n"),
		"json big number": []byte(`{"n":12345678901234567890}`),
		"json exponent":   []byte(`[1E5,1e21,0.10]`),
		"json index keys": []byte(`{"b":1,"0":2}`),
		"json duplicate":  []byte(`{"a":1,"a":2}`),
		"json html":       []byte(`"<script>&amp;</script>"`),
		"json escapes":    []byte(`"\u0041\/\ud83d\ude00"`),
		"json lone surr":  []byte(`"\ud800"`),
		"json minus zero": []byte(`-0`),
		"json string":     []byte(`"plain"`),
		"json number":     []byte(`42`),
		"json null":       []byte(`null`),
		"json deep":       []byte(strings.Repeat("[", 600) + strings.Repeat("]", 600)),
		"not json":        []byte(`{"unterminated":`),
	}
}

// oddMetadata has the keys libraries rely on (CQRS's "name", the
// correlation middleware's "correlation_id") and keys that are easy to
// break.
func oddMetadata() message.Metadata {
	return message.Metadata{
		"name":           "OrderPlaced",
		"Name":           "case matters",
		"correlation_id": watermill.NewUUID(),
		"":               "empty key",
		"empty value":    "",
		"0":              "index-like key",
		"__proto__":      "not a prototype",
		"quote\"back\\":  "new\nline\ttab\x01",
		"<html>&":        "<b>&amp;</b>",
		"ключ 😀":         "значение \u2028",
	}
}

type namedMessage struct {
	name string
	msg  *message.Message
}

// trickyMessages combines every tricky payload with odd metadata, with no
// metadata and with an empty UUID.
func trickyMessages() []namedMessage {
	var out []namedMessage
	for name, p := range trickyPayloads() {
		m := message.NewMessage(watermill.NewUUID(), p)
		m.Metadata = oddMetadata()
		out = append(out,
			namedMessage{name + "/metadata", m},
			namedMessage{name + "/bare", message.NewMessage(watermill.NewUUID(), p)},
			namedMessage{name + "/no uuid", message.NewMessage("", p)},
		)
	}
	return out
}

// requireEqualMessages fails with a readable diff when Equals is false.
func requireEqualMessages(t testing.TB, want, got *message.Message) {
	t.Helper()
	if !want.Equals(got) {
		require.Equal(t, want.UUID, got.UUID, "UUID")
		require.Equal(t, want.Metadata, got.Metadata, "metadata")
		require.Equal(t, want.Payload, got.Payload, "payload")
		t.Fatal("messages differ")
	}
}

// concurrentRoundTrips marshals and unmarshals 1,000 distinct messages on
// as many goroutines through one marshaler value.
func concurrentRoundTrips(t *testing.T, mu marshalerUnmarshaler, check func(want, got *message.Message) error) {
	t.Helper()
	const n = 1000
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := message.NewMessage(watermill.NewUUID(), fmt.Appendf(nil, `{"i":%d,"s":"%s"}`, i, strings.Repeat("x", i%50)))
			want.Metadata.Set("name", fmt.Sprint("event-", i))
			data, err := mu.Marshal("topic", want)
			if err != nil {
				errs <- err
				return
			}
			got, err := mu.Unmarshal("topic", data)
			if err != nil {
				errs <- err
				return
			}
			errs <- check(want, got)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// splitAll splits stream with a bufio.Scanner (the way a reader would use
// a FrameSplitter) reading chunk bytes at a time, and returns the frames
// as copies.
func splitAll(s FrameSplitter, stream []byte, chunk, maxFrame int) ([][]byte, error) {
	sc := bufio.NewScanner(&chunkReader{data: stream, chunk: chunk})
	sc.Buffer(make([]byte, 0, 16), maxFrame+1)
	sc.Split(s.Split)
	var frames [][]byte
	for sc.Scan() {
		frames = append(frames, bytes.Clone(sc.Bytes()))
	}
	return frames, sc.Err()
}

type chunkReader struct {
	data  []byte
	chunk int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.chunk)], r.data)
	r.data = r.data[n:]
	return n, nil
}
