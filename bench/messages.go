package main

import (
	"bytes"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	durablestreams "github.com/durablestreams/watermill-durablestreams"
)

// mode is a wire format and payload size.
type mode struct {
	name        string
	framed      bool
	payloadSize int
}

var (
	jsonMode  = mode{name: "JSON", payloadSize: 100}
	framed100 = mode{name: "bytes 100 B", framed: true, payloadSize: 100}
	framed64K = mode{name: "bytes 64 KiB", framed: true, payloadSize: 64 << 10}
)

func (m mode) marshaler() durablestreams.Marshaler {
	if m.framed {
		return durablestreams.FramedMarshaler{}
	}
	return durablestreams.JSONMarshaler{}
}

func (m mode) contentType() string { return m.marshaler().ContentType() }

// payload returns the payload every message of the mode carries: a JSON
// object of exactly payloadSize bytes, so that JSONMarshaler embeds it as
// JSON (the common case) and the server re-prints it unchanged.
func (m mode) payload() []byte {
	const head, tail = `{"event":"bench","data":"`, `"}`
	pad := m.payloadSize - len(head) - len(tail)
	return []byte(head + string(bytes.Repeat([]byte{'x'}, pad)) + tail)
}

// corpus holds the messages of one mode: their UUIDs and, for the raw
// client, exactly the bytes the Publisher's marshaler makes of them, so
// that the raw rows send what the library sends.
type corpus struct {
	mode    mode
	payload []byte
	uuids   []string
	encoded [][]byte
}

// corpusOf returns the mode's first n messages, built once.
func (b *bench) corpusOf(m mode, n int) (*corpus, error) {
	c := b.corpus[m]
	if c == nil {
		c = &corpus{mode: m, payload: m.payload()}
		b.corpus[m] = c
	}
	marshaler := m.marshaler()
	for len(c.uuids) < n {
		id := uuid.NewString()
		enc, err := marshaler.Marshal("bench", message.NewMessage(id, c.payload))
		if err != nil {
			return nil, fmt.Errorf("marshal bench message: %w", err)
		}
		c.uuids = append(c.uuids, id)
		c.encoded = append(c.encoded, enc)
	}
	return &corpus{mode: m, payload: c.payload, uuids: c.uuids[:n], encoded: c.encoded[:n]}, nil
}

// messages returns fresh Watermill messages (Publish sets metadata on
// them, so they are not reused across runs).
func (c *corpus) messages() []*message.Message {
	msgs := make([]*message.Message, len(c.uuids))
	for i, id := range c.uuids {
		msgs[i] = message.NewMessage(id, c.payload)
	}
	return msgs
}

// batches groups the encoded messages into request bodies of at most
// perBody messages and maxBytes bytes: JSON arrays in JSON mode, plain
// concatenation in byte mode.
func (c *corpus) batches(perBody, maxBytes int) [][]byte {
	var bodies [][]byte
	var body []byte
	count := 0
	flush := func() {
		if count == 0 {
			return
		}
		if !c.mode.framed {
			body = append(body, ']')
		}
		bodies = append(bodies, body)
		body, count = nil, 0
	}
	for _, enc := range c.encoded {
		if count == perBody || (count > 0 && len(body)+len(enc)+2 > maxBytes) {
			flush()
		}
		if !c.mode.framed {
			if count == 0 {
				body = append(body, '[')
			} else {
				body = append(body, ',')
			}
		}
		body = append(body, enc...)
		count++
	}
	flush()
	return bodies
}

func (b *bench) describeMessages() string {
	c, err := b.corpusOf(jsonMode, 1)
	if err != nil {
		return err.Error()
	}
	f, err := b.corpusOf(framed100, 1)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%d-byte payloads: %d bytes per message on the wire in JSON mode (JSONMarshaler envelope), %d in byte mode (FramedMarshaler); the raw and TypeScript rows send the same bytes",
		jsonMode.payloadSize, len(c.encoded[0]), len(f.encoded[0]))
}
