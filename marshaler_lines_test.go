package durablestreams

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/defaults"
)

func TestLinesMarshalerRoundTrip(t *testing.T) {
	m := LinesMarshaler{}
	assert.Equal(t, "text/plain", m.ContentType())
	assert.Equal(t, "text/x-log", LinesMarshaler{StreamContentType: "text/x-log"}.ContentType())
	payloads := [][]byte{nil, {}, []byte("log line"), []byte("ünïcödé 😀"), {0x00, 0xff, 0x7f}, bytes.Repeat([]byte("x"), 1<<16)}
	var stream []byte
	for _, p := range payloads {
		msg := message.NewMessage("ignored", p)
		msg.Metadata.Set("name", "ignored")
		data, err := m.Marshal("t", msg)
		require.NoError(t, err)
		assert.Equal(t, append(bytes.Clone(p), '\n'), data)
		got, err := m.Unmarshal("t", data)
		require.NoError(t, err)
		assert.Equal(t, string(p), string(got.Payload))
		assert.NotEmpty(t, got.UUID)
		assert.Empty(t, got.Metadata)
		stream = append(stream, data...)
	}
	for _, chunk := range []int{1, 5, 1 << 16} {
		frames, err := splitAll(m, stream, chunk, defaults.MaxFrameBytes)
		require.NoError(t, err)
		require.Len(t, frames, len(payloads))
		for i, frame := range frames {
			got, err := m.Unmarshal("t", frame)
			require.NoError(t, err)
			assert.Equal(t, string(payloads[i]), string(got.Payload))
		}
	}
}

func TestLinesMarshalerRejectsLineBreaks(t *testing.T) {
	for _, p := range []string{"a\nb", "a\r", "\n", "\r\n"} {
		_, err := LinesMarshaler{}.Marshal("t", message.NewMessage("u", []byte(p)))
		require.ErrorIs(t, err, ErrPayloadHasNewline)
		var merr *MarshalError
		require.ErrorAs(t, err, &merr)
	}
	_, err := LinesMarshaler{}.Unmarshal("t", []byte("a\nb\n"))
	require.ErrorIs(t, err, ErrInvalidFrame)
}

func TestLinesMarshalerSplit(t *testing.T) {
	m := LinesMarshaler{MaxFrameBytes: 8}
	frames, err := splitAll(m, []byte("a\r\n\nbc\nlast"), 2, 8)
	require.NoError(t, err)
	assert.Equal(t, [][]byte{[]byte("a\r\n"), []byte("\n"), []byte("bc\n"), []byte("last")}, frames)
	got, err := m.Unmarshal("t", frames[0])
	require.NoError(t, err)
	assert.Equal(t, "a", string(got.Payload), "CRLF from other writers")

	advance, frame, err := m.Split([]byte("partial"), false)
	require.NoError(t, err)
	assert.Zero(t, advance)
	assert.Nil(t, frame)

	advance, frame, err = m.Split([]byte("1234567\n"), false)
	require.NoError(t, err)
	assert.Equal(t, 8, advance)
	assert.Equal(t, "1234567\n", string(frame))

	_, _, err = m.Split([]byte("12345678\n"), false)
	require.ErrorIs(t, err, ErrFrameTooLarge)
	var uerr *UnmarshalError
	require.ErrorAs(t, err, &uerr)
	_, err = m.Marshal("t", message.NewMessage("u", []byte("12345678")))
	require.ErrorIs(t, err, ErrFrameTooLarge)
}

func TestLinesMarshalerConcurrent(t *testing.T) {
	concurrentRoundTrips(t, LinesMarshaler{}, func(want, got *message.Message) error {
		if string(want.Payload) != string(got.Payload) || len(got.Metadata) != 0 || got.UUID == "" {
			return fmt.Errorf("message %s differs", want.UUID)
		}
		return nil
	})
}

func FuzzLinesUnmarshal(f *testing.F) {
	f.Add([]byte("line\n"))
	f.Add([]byte("a\r\n"))
	f.Add([]byte("a\nb"))
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := LinesMarshaler{}.Unmarshal("t", data)
		if err != nil {
			if !errors.Is(err, ErrInvalidFrame) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !bytes.HasPrefix(data, msg.Payload) || bytes.ContainsRune(msg.Payload, '\n') {
			t.Fatalf("payload %q from %q", msg.Payload, data)
		}
	})
}

func FuzzLinesSplit(f *testing.F) {
	f.Add([]byte("a\nb\r\n\nc"), uint8(1))
	f.Add([]byte("0123456789abcdef0123\n"), uint8(7))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		m := LinesMarshaler{MaxFrameBytes: 16}
		frames, err := splitAll(m, stream, int(chunk)+1, m.MaxFrameBytes)
		if err != nil {
			if !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !bytes.Equal(bytes.Join(frames, nil), stream) {
			t.Fatal("frames do not add up to the stream")
		}
		for _, frame := range frames {
			if len(frame) > m.MaxFrameBytes {
				t.Fatalf("frame of %d bytes", len(frame))
			}
			if _, err := m.Unmarshal("t", frame); err != nil {
				t.Fatalf("frame %q: %v", frame, err)
			}
		}
	})
}

func FuzzLinesRoundTrip(f *testing.F) {
	f.Add([]byte("log line"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		m := LinesMarshaler{}
		data, err := m.Marshal("t", message.NewMessage("u", payload))
		if err != nil {
			if !errors.Is(err, ErrPayloadHasNewline) || !bytes.ContainsAny(payload, "\r\n") {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		frames, err := splitAll(m, append(bytes.Clone(data), data...), 3, defaults.MaxFrameBytes)
		if err != nil || len(frames) != 2 {
			t.Fatalf("split: %d frames, %v", len(frames), err)
		}
		got, err := m.Unmarshal("t", frames[1])
		if err != nil || !bytes.Equal(got.Payload, payload) {
			t.Fatalf("round trip of %q: %q, %v", payload, got.Payload, err)
		}
	})
}
