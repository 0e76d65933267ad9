package envelope

import (
	"encoding/base64"
	"errors"
	"sync"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
)

// DecodeJSON decodes one envelope, in any JSON formatting, of any
// version: it accepts all three payload fields and ignores fields it does
// not know. It fails with an *Error on anything else, and does not keep
// data.
func DecodeJSON(data []byte) (*message.Message, error) {
	d := envelopeDecoders.Get().(*envelopeDecoder)
	*d = envelopeDecoder{
		c:       d.c,
		strs:    d.strs[:0],
		meta:    d.meta[:0],
		keyAt:   d.keyAt[:0],
		scratch: d.scratch[:0],
	}
	d.c.Reset(data, jsonscan.MaxDepth)
	msg, err := d.decode(data)
	d.c.Reset(nil, 0)
	d.payload = nil
	if cap(d.strs)+cap(d.scratch) <= 64<<10 && cap(d.meta) <= 1024 && cap(d.keyAt) <= 512 {
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
	// message; meta holds key and value spans in it, keyAt the offset of
	// each key in the data.
	strs    []byte
	meta    []span
	keyAt   []int
	scratch []byte
}

// fail reports err, a *jsonscan.SyntaxError, or reason at the cursor.
func (d *envelopeDecoder) fail(reason string, err error) (*message.Message, error) {
	serr := d.c.Fail(reason)
	if err != nil {
		errors.As(err, &serr)
	}
	return nil, &Error{Offset: serr.Offset, Reason: serr.Reason}
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
		k := str(d.meta[i])
		if _, dup := msg.Metadata[k]; dup {
			return nil, &Error{Offset: d.keyAt[i/2], Reason: "duplicate metadata key " + jsonscan.QuoteKey(k)}
		}
		msg.Metadata[k] = str(d.meta[i+1])
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
		at := c.Offset()
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
		d.keyAt = append(d.keyAt, at)
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
