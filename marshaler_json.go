package durablestreams

import (
	"encoding/base64"
	"errors"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
)

// Limits on JSON nesting. The reference server parses and re-prints every
// JSON-mode message recursively, and Node 20 fails a whole batch past about
// 4,000 levels, so what we write stays far below that. Reads accept what
// Go's encoding/json accepts.
const (
	maxWriteDepth = 512
	maxReadDepth  = jsonscan.MaxDepth
)

// JSONMarshaler is the default marshaler. It writes each message to a
// JSON-mode stream (application/json) as one envelope object that keeps
// the UUID, every metadata key exactly as given and the payload:
//
//	{"uuid":"…","metadata":{"name":"OrderPlaced"},"payload":{"id":7}}
//
// A payload that is JSON is written under "payload" as JSON, so that
// every reader (a browser, another language) finds it in one place,
// whenever the reference server's re-printing keeps its value: the Node
// reference server parses and re-prints every message as JavaScript's
// JSON.stringify does, which may change whitespace, string escapes (Go's
// encoding/json writes "<" as "\u003c") and number spelling (1.50, 1E5),
// but not the value. Any other payload is stored so that it survives
// unchanged:
//
//	{"uuid":"…","metadata":{},"payload_text":"{\"n\":12345678901234567890}"}  valid UTF-8 (also empty)
//	{"uuid":"…","metadata":{},"payload_base64":"/wA="}                        anything else
//
// payload_text holds JSON whose value JavaScript would change: numbers a
// double cannot hold (or minus zero), duplicate keys, integer-like keys
// ("0", "42") after other keys, which JavaScript moves to the front, and
// nesting deeper than 512 levels.
//
// What Unmarshal returns: on a server that keeps JSON messages byte for
// byte (the Caddy-based production server), the payload exactly as
// published. On the reference server, a payload under "payload" comes back
// as JavaScript re-printed it: the same JSON value, perhaps other bytes.
// Set ExactPayload for byte-exact payloads on every server.
//
// Exactly one of the three payload fields is present and "metadata" is
// always an object of strings (schema/envelope.schema.json). Unmarshal
// accepts all three fields, ignores fields it does not know, so later
// versions can add some, and reads envelopes of any version.
//
// Marshal fails with ErrInvalidUTF8 when the UUID or metadata is not valid
// UTF-8; Unmarshal fails with ErrInvalidEnvelope on anything that is not
// such an envelope. Both errors are typed (*MarshalError, *UnmarshalError).
type JSONMarshaler struct {
	// ExactPayload writes under "payload" only JSON that JavaScript prints
	// exactly so (compact, its escapes and number spelling, no reordered
	// or duplicate keys), and every other payload under "payload_text" or
	// "payload_base64": payloads then round-trip byte for byte on every
	// server, but readers other than this library must look at all three
	// fields. Default: false.
	ExactPayload bool
}

var _ marshalerUnmarshaler = JSONMarshaler{}

const jsonMarshalerName = "JSONMarshaler"

// ContentType returns application/json.
func (JSONMarshaler) ContentType() string { return "application/json" }

// Marshal encodes msg as an envelope. The result never shares memory
// with msg.
func (m JSONMarshaler) Marshal(_ string, msg *message.Message) ([]byte, error) {
	size := len(`{"uuid":"","metadata":{},"payload_base64":""}`) + len(msg.UUID)
	if !utf8.ValidString(msg.UUID) {
		return nil, &MarshalError{Marshaler: jsonMarshalerName, UUID: msg.UUID, Reason: "UUID", Err: ErrInvalidUTF8}
	}
	var keyBuf [8]string
	keys := keyBuf[:0]
	for k, v := range msg.Metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, &MarshalError{Marshaler: jsonMarshalerName, UUID: msg.UUID, Reason: "metadata key " + jsonscan.QuoteKey(k), Err: ErrInvalidUTF8}
		}
		keys = append(keys, k)
		size += len(k) + len(v) + 6
	}
	slices.Sort(keys)

	payload := msg.Payload
	kind := payloadBase64
	switch r := jsonscan.Classify(payload, maxWriteDepth); {
	case r == jsonscan.SameBytes, r == jsonscan.SameValue && !m.ExactPayload:
		kind = payloadJSON
		size += len(payload)
	case utf8.Valid(payload):
		kind = payloadText
		size += len(payload) + len(payload)/8
	default:
		size += base64.StdEncoding.EncodedLen(len(payload))
	}

	b := make([]byte, 0, size)
	b = append(b, `{"uuid":`...)
	b = jsonscan.AppendString(b, msg.UUID)
	b = append(b, `,"metadata":{`...)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonscan.AppendString(b, k)
		b = append(b, ':')
		b = jsonscan.AppendString(b, msg.Metadata[k])
	}
	b = append(b, "},"...)
	switch kind {
	case payloadJSON:
		b = append(b, `"payload":`...)
		b = append(b, payload...)
	case payloadText:
		b = append(b, `"payload_text":`...)
		b = jsonscan.AppendString(b, []byte(payload))
	default:
		b = append(b, `"payload_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, payload)
		b = append(b, '"')
	}
	return append(b, '}'), nil
}

type payloadKind int

const (
	payloadJSON payloadKind = iota
	payloadText
	payloadBase64
)

// Unmarshal decodes one envelope. It accepts any JSON formatting of it
// and does not keep data.
func (JSONMarshaler) Unmarshal(_ string, data []byte) (*message.Message, error) {
	d := envelopeDecoders.Get().(*envelopeDecoder)
	*d = envelopeDecoder{
		c:       d.c,
		strs:    d.strs[:0],
		meta:    d.meta[:0],
		scratch: d.scratch[:0],
	}
	d.c.Reset(data, maxReadDepth)
	msg, err := d.decode(data)
	d.c.Reset(nil, 0)
	d.payload = nil
	if cap(d.strs)+cap(d.scratch) <= 64<<10 && cap(d.meta) <= 1024 {
		envelopeDecoders.Put(d)
	}
	return msg, err
}

// envelopeDecoders recycles the decoders' buffers: Unmarshal runs for
// every message read.
var envelopeDecoders = sync.Pool{New: func() any { return new(envelopeDecoder) }}

type envelopeDecoder struct {
	c           jsonscan.Cursor
	uuid        span
	hasUUID     bool
	hasMetadata bool
	payloads    int
	payload     []byte
	// strs holds the UUID and metadata, which become one string for the
	// message; meta holds key and value spans in it.
	strs    []byte
	meta    []span
	scratch []byte
}

// fail reports err, a *jsonscan.SyntaxError, or reason at the cursor.
func (d *envelopeDecoder) fail(reason string, err error) (*message.Message, error) {
	serr := d.c.Fail(reason)
	if err != nil {
		errors.As(err, &serr)
	}
	return nil, &UnmarshalError{Marshaler: jsonMarshalerName, Offset: serr.Offset, Reason: serr.Reason, Err: ErrInvalidEnvelope}
}

func (d *envelopeDecoder) decode(data []byte) (*message.Message, error) {
	c := &d.c
	if !utf8.Valid(data) {
		return d.fail("not valid UTF-8", nil)
	}
	c.SkipSpace()
	if !c.Consume('{') {
		return d.fail("not a JSON object", nil)
	}
	c.SkipSpace()
	for {
		raw, escaped, err := c.String()
		if err != nil {
			return d.fail("expected object key", nil)
		}
		key := raw[1 : len(raw)-1]
		if escaped {
			d.scratch = jsonscan.AppendUnquoted(d.scratch[:0], raw)
			key = d.scratch
		}
		c.SkipSpace()
		if !c.Consume(':') {
			return d.fail("expected ':'", nil)
		}
		c.SkipSpace()
		if reason, err := d.field(key); reason != "" || err != nil {
			return d.fail(reason, err)
		}
		c.SkipSpace()
		if c.Consume('}') {
			break
		}
		if c.AtEnd() {
			return d.fail("unexpected end of JSON", nil)
		}
		if !c.Consume(',') {
			return d.fail("expected ',' or '}'", nil)
		}
		c.SkipSpace()
	}
	c.SkipSpace()
	switch {
	case !c.AtEnd():
		return d.fail("data after the envelope", nil)
	case !d.hasUUID:
		return d.fail(`no "uuid"`, nil)
	case d.payloads == 0:
		return d.fail(`no "payload", "payload_text" or "payload_base64"`, nil)
	}
	strs := string(d.strs)
	str := func(f span) string { return strs[f.start:f.end] }
	msg := message.NewMessage(str(d.uuid), d.payload)
	for i := 0; i < len(d.meta); i += 2 {
		msg.Metadata[str(d.meta[i])] = str(d.meta[i+1])
	}
	return msg, nil
}

// field decodes the value of one envelope field and returns why it is
// invalid, if it is.
func (d *envelopeDecoder) field(key []byte) (string, error) {
	c := &d.c
	switch string(key) {
	case "uuid":
		if d.hasUUID {
			return `duplicate "uuid"`, nil
		}
		v, ok := d.string()
		if !ok {
			return `"uuid" is not a string`, nil
		}
		d.uuid, d.hasUUID = v, true
	case "metadata":
		if d.hasMetadata {
			return `duplicate "metadata"`, nil
		}
		d.hasMetadata = true
		return d.metadataObject(), nil
	case "payload":
		if d.payloads++; d.payloads > 1 {
			return "more than one payload field", nil
		}
		v, err := c.Value()
		if err != nil {
			return "", err
		}
		d.payload = append([]byte(nil), v...)
	case "payload_text", "payload_base64":
		if d.payloads++; d.payloads > 1 {
			return "more than one payload field", nil
		}
		return d.stringPayload(string(key)), nil
	default:
		if _, err := c.Value(); err != nil {
			return "", err
		}
	}
	return "", nil
}

// stringPayload decodes the string value of "payload_text" or
// "payload_base64" (key) into d.payload, and returns why it is invalid,
// if it is.
func (d *envelopeDecoder) stringPayload(key string) string {
	raw, escaped, err := d.c.String()
	if err != nil {
		return `"` + key + `" is not a string`
	}
	if key == "payload_text" {
		if escaped {
			d.payload = jsonscan.AppendUnquoted(nil, raw)
		} else {
			d.payload = append([]byte(nil), raw[1:len(raw)-1]...)
		}
		return ""
	}
	if escaped {
		// Base64 needs no escapes, but JSON allows them.
		d.scratch = jsonscan.AppendUnquoted(d.scratch[:0], raw)
		raw = d.scratch
	} else {
		raw = raw[1 : len(raw)-1]
	}
	p, err := base64.StdEncoding.AppendDecode(make([]byte, 0, base64.StdEncoding.DecodedLen(len(raw))), raw)
	if err != nil {
		return `"payload_base64" is not base64`
	}
	d.payload = p
	return ""
}

// string decodes a JSON string at the cursor into d.strs.
func (d *envelopeDecoder) string() (span, bool) {
	raw, escaped, err := d.c.String()
	if err != nil {
		return span{}, false
	}
	start := len(d.strs)
	if escaped {
		d.strs = jsonscan.AppendUnquoted(d.strs, raw)
	} else {
		d.strs = append(d.strs, raw[1:len(raw)-1]...)
	}
	return span{start, len(d.strs)}, true
}

func (d *envelopeDecoder) metadataObject() string {
	c := &d.c
	if !c.Consume('{') {
		return `"metadata" is not an object`
	}
	c.SkipSpace()
	if c.Consume('}') {
		return ""
	}
	for {
		k, ok := d.string()
		if !ok {
			return "expected metadata key"
		}
		c.SkipSpace()
		if !c.Consume(':') {
			return "expected ':'"
		}
		c.SkipSpace()
		v, ok := d.string()
		if !ok {
			return "metadata value is not a string"
		}
		d.meta = append(d.meta, k, v)
		c.SkipSpace()
		if c.Consume('}') {
			return ""
		}
		if c.AtEnd() {
			return "unexpected end of JSON"
		}
		if !c.Consume(',') {
			return "expected ',' or '}'"
		}
		c.SkipSpace()
	}
}
