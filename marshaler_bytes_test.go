package durablestreams

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/defaults"
	"github.com/durablestreams/watermill-durablestreams/internal/envelope"
)

func TestFramedMarshalerRoundTrip(t *testing.T) {
	m := FramedMarshaler{}
	for _, tc := range trickyMessages() {
		t.Run(tc.name, func(t *testing.T) {
			data, err := m.Marshal("topic", tc.msg)
			require.NoError(t, err)
			got, err := m.Unmarshal("topic", data)
			require.NoError(t, err)
			requireEqualMessages(t, tc.msg, got)

			again, err := m.Marshal("topic", tc.msg)
			require.NoError(t, err)
			assert.Equal(t, data, again, "the same message gives the same bytes")
		})
	}
}

func TestFramedMarshalerContentType(t *testing.T) {
	assert.Equal(t, "application/octet-stream", FramedMarshaler{}.ContentType())
	assert.Equal(t, "application/x-app", FramedMarshaler{StreamContentType: "application/x-app"}.ContentType())
}

func TestFramedMarshalerSplitsConcatenatedStream(t *testing.T) {
	m := FramedMarshaler{}
	msgs := trickyMessages()
	var stream []byte
	for _, tc := range msgs {
		data, err := m.Marshal("t", tc.msg)
		require.NoError(t, err)
		stream = append(stream, data...)
	}
	for _, chunk := range []int{7, 4096, len(stream)} {
		frames, err := splitAll(m, stream, chunk, defaults.MaxFrameBytes)
		require.NoError(t, err, "chunk %d", chunk)
		require.Len(t, frames, len(msgs))
		for i, frame := range frames {
			got, err := m.Unmarshal("t", frame)
			require.NoError(t, err)
			requireEqualMessages(t, msgs[i].msg, got)
		}
	}
}

func TestFramedMarshalerSplitWaitsForWholeFrame(t *testing.T) {
	m := FramedMarshaler{}
	frame, err := m.Marshal("t", message.NewMessage("u", []byte("payload\n")))
	require.NoError(t, err)
	for n := 0; n < len(frame); n++ {
		advance, token, err := m.Split(frame[:n], false)
		require.NoError(t, err, "prefix %d", n)
		assert.Zero(t, advance)
		assert.Nil(t, token)
		if n > 0 {
			_, _, err = m.Split(frame[:n], true)
			require.ErrorIs(t, err, ErrInvalidFrame, "truncated at EOF, prefix %d", n)
		}
	}
	advance, token, err := m.Split(append(frame, 0xFF), false)
	require.NoError(t, err)
	assert.Equal(t, len(frame), advance)
	assert.Equal(t, frame, token)
}

func TestFramedMarshalerDetectsGarbage(t *testing.T) {
	m := FramedMarshaler{}
	for _, data := range [][]byte{[]byte("hello\n"), []byte(`{"a":1}`), {0xFF, 'D', 'X'}, {0xFF, 'D', 'S', 0x02, 0, 0, 0, 0}, {0}} {
		_, _, err := m.Split(data, false)
		require.ErrorIs(t, err, ErrInvalidFrame, "%q", data)
		var uerr *UnmarshalError
		require.ErrorAs(t, err, &uerr)
		_, err = m.Unmarshal("t", data)
		require.ErrorIs(t, err, ErrInvalidFrame)
	}
	for _, partial := range [][]byte{nil, envelope.FrameMagic[:2], envelope.FrameMagic[:]} {
		_, err := m.Unmarshal("t", partial)
		require.ErrorIs(t, err, ErrInvalidFrame, "%q", partial)
	}
}

func TestFramedMarshalerUnmarshalRejectsBadFrames(t *testing.T) {
	good, err := FramedMarshaler{}.Marshal("t", message.NewMessage("uuid", []byte("p")))
	require.NoError(t, err)
	header := func(body ...byte) []byte {
		b := append(envelope.FrameMagic[:], 0, 0, 0, 0)
		binary.BigEndian.PutUint32(b[4:], uint32(len(body)))
		return append(b, body...)
	}
	bad := map[string][]byte{
		"longer than header says": append(bytes.Clone(good), 'x'),
		"shorter":                 good[:len(good)-1],
		"uuid longer than frame":  header(10, 'a'),
		"bad uvarint":             header(0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01),
		"no metadata count":       header(1, 'u'),
		"count beyond frame":      header(0, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F),
		"value missing":           header(0, 1, 1, 'k'),
		"duplicate key":           header(0, 2, 1, 'k', 1, 'v', 1, 'k', 1, 'w'),
	}
	for name, data := range bad {
		_, err := FramedMarshaler{}.Unmarshal("t", data)
		require.ErrorIs(t, err, ErrInvalidFrame, name)
	}
}

func TestFramedMarshalerBoundsFrameSize(t *testing.T) {
	m := FramedMarshaler{MaxFrameBytes: 64}
	_, err := m.Marshal("t", message.NewMessage("u", make([]byte, 64)))
	require.ErrorIs(t, err, ErrFrameTooLarge)
	var merr *MarshalError
	require.ErrorAs(t, err, &merr)
	_, err = m.Marshal("t", message.NewMessage("u", make([]byte, 64-envelope.FrameHeaderLen-3)))
	require.NoError(t, err)

	huge := append(envelope.FrameMagic[:], 0xFF, 0xFF, 0xFF, 0xFF)
	for _, m := range []FramedMarshaler{{}, {MaxFrameBytes: 1 << 40}} {
		allocs := testing.AllocsPerRun(10, func() {
			if _, _, err := m.Split(huge, false); !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("want ErrFrameTooLarge, got %v", err)
			}
		})
		assert.LessOrEqual(t, allocs, 6.0, "only the error is allocated, never the claimed 4 GiB")
	}
}

func TestFramedMarshalerHostileCountsAllocateLittle(t *testing.T) {
	// A frame of 20 bytes that claims a huge metadata count and field.
	body := []byte{0}
	body = binary.AppendUvarint(body, 1<<62)
	frame := append(append(envelope.FrameMagic[:], 0, 0, 0, 0), body...)
	binary.BigEndian.PutUint32(frame[4:], uint32(len(body)))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		_, err := FramedMarshaler{}.Unmarshal("t", frame)
		require.ErrorIs(t, err, ErrInvalidFrame)
	}
	runtime.ReadMemStats(&after)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(100<<10))
}

func TestFramedMarshalerConcurrent(t *testing.T) {
	concurrentRoundTrips(t, FramedMarshaler{}, func(want, got *message.Message) error {
		if !want.Equals(got) {
			return fmt.Errorf("message %s differs", want.UUID)
		}
		return nil
	})
}

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

func FuzzFramedUnmarshal(f *testing.F) {
	seed, _ := FramedMarshaler{}.Marshal("t", message.NewMessage("u", []byte("p\n\x00")))
	f.Add(seed)
	f.Add([]byte{0xFF, 'D', 'S', 1, 0, 0, 0, 3, 0, 1, 0})
	f.Add([]byte("not a frame"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m := FramedMarshaler{MaxFrameBytes: 1 << 20}
		msg, err := m.Unmarshal("t", data)
		if err != nil {
			var uerr *UnmarshalError
			if !errors.As(err, &uerr) || !errors.Is(err, ErrInvalidFrame) && !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		again, err := m.Marshal("t", msg)
		if err != nil {
			t.Fatal(err)
		}
		back, err := m.Unmarshal("t", again)
		if err != nil {
			t.Fatal(err)
		}
		requireEqualMessages(t, msg, back)
	})
}

func FuzzFramedSplit(f *testing.F) {
	m := FramedMarshaler{MaxFrameBytes: 1 << 16}
	one, _ := m.Marshal("t", message.NewMessage("u", []byte("a\nb")))
	two, _ := m.Marshal("t", message.NewMessage("", nil))
	f.Add(append(bytes.Clone(one), two...), uint8(3))
	f.Add(one[:5], uint8(1))
	f.Add([]byte{0xFF, 'D', 'S', 1, 0xFF, 0xFF, 0xFF, 0xFF}, uint8(8))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		frames, err := splitAll(m, stream, int(chunk)+1, m.MaxFrameBytes)
		if err != nil {
			var uerr *UnmarshalError
			if !errors.As(err, &uerr) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// Split loses nothing and adds nothing.
		if joined := bytes.Join(frames, nil); !bytes.Equal(joined, stream) {
			t.Fatalf("frames do not add up to the stream")
		}
		for _, frame := range frames {
			if _, err := m.Unmarshal("t", frame); err != nil && !errors.Is(err, ErrInvalidFrame) {
				t.Fatalf("untyped error %v", err)
			}
		}
	})
}

func FuzzFramedRoundTrip(f *testing.F) {
	f.Add("uuid", "name", "Evt", []byte("payload\n\x00\xff"))
	f.Add("", "", "", []byte{})
	f.Fuzz(func(t *testing.T, uuid, key, value string, payload []byte) {
		m := FramedMarshaler{}
		msg := message.NewMessage(uuid, payload)
		msg.Metadata.Set(key, value)
		data, err := m.Marshal("t", msg)
		if err != nil {
			t.Fatal(err)
		}
		frames, err := splitAll(m, append(bytes.Clone(data), data...), 5, defaults.MaxFrameBytes)
		if err != nil || len(frames) != 2 {
			t.Fatalf("split: %d frames, %v", len(frames), err)
		}
		got, err := m.Unmarshal("t", frames[1])
		if err != nil {
			t.Fatal(err)
		}
		requireEqualMessages(t, msg, got)
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
