package durablestreams

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/cloudevents"
	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
)

// CloudEventsMarshaler writes each message to a JSON-mode stream as a
// CloudEvent (spec 1.0) in structured JSON mode, for readers that speak
// CloudEvents:
//
//	{"specversion":"1.0","id":"<UUID>","source":"/orders","type":"OrderPlaced",
//	 "datacontenttype":"application/json","data":{"id":7},"correlationz5fid":"c1"}
//
// The mapping, which Unmarshal inverts so that messages round-trip:
//   - id is the message UUID (CloudEvents requires one: an empty UUID
//     cannot be marshalled).
//   - type is the metadata value under TypeKey (CQRS's "name" by
//     default), which must be present and not empty.
//   - source is the metadata value "ce_source", else Source. Unmarshal
//     sets "ce_source" only for a source other than Source.
//   - time, subject and dataschema are the metadata values "ce_time"
//     (RFC 3339), "ce_subject" and "ce_dataschema", when present.
//   - The payload is "data" as JSON when it is JSON whose value the
//     server's re-printing keeps (as in JSONMarshaler, ExactPayload too),
//     with datacontenttype application/json; "data" as a string for other
//     UTF-8 text (text/plain; charset=utf-8); else "data_base64" (JSON
//     that re-printing would change: application/json; other bytes:
//     application/octet-stream). The metadata value "ce_datacontenttype"
//     replaces that content type; Unmarshal sets it only for a content
//     type other than the one chosen so.
//   - Every other metadata key is an extension attribute, its value a
//     string. Attribute names allow only lowercase letters and digits, so
//     keys are mapped one to one: a to y and 0 to 9 stay, any other byte
//     (z too) becomes z and two hex digits ("correlation_id" →
//     "correlationz5fid", "Name" → "z4eame", "" → "zz"), and a name
//     the spec uses itself gets its first byte escaped ("id" → "z69d").
//
// Unmarshal accepts any CloudEvent 1.0 in structured JSON mode: extension
// names it does not recognise become metadata keys as they are, and
// non-string extension values their JSON text.
//
// Marshal fails with ErrInvalidCloudEvent (no UUID, type or source, an
// invalid "ce_time") or ErrInvalidUTF8; Unmarshal with
// ErrInvalidCloudEvent.
type CloudEventsMarshaler struct {
	// Source is the event source (a URI reference, such as "/orders" or
	// "urn:example:orders") of messages without a "ce_source" metadata
	// value. Required unless every message has one.
	Source string
	// TypeKey is the metadata key holding the event type. Default: "name"
	// (what Watermill's CQRS component sets).
	TypeKey string
	// ExactPayload writes as "data" only JSON that JavaScript prints
	// exactly so, and other JSON as "data_base64", so that payloads
	// round-trip byte for byte on every server (see JSONMarshaler).
	// Default: false.
	ExactPayload bool
}

var _ marshalerUnmarshaler = CloudEventsMarshaler{}

const cloudEventsMarshalerName = "CloudEventsMarshaler"

// Metadata keys of the CloudEvents attributes that are not extensions.
const (
	ceKeySource          = "ce_source"
	ceKeyTime            = "ce_time"
	ceKeySubject         = "ce_subject"
	ceKeyDataSchema      = "ce_dataschema"
	ceKeyDataContentType = "ce_datacontenttype"
)

// ceOptional maps the optional string attributes to their metadata keys.
var ceOptional = [...]struct{ attr, key string }{
	{"time", ceKeyTime}, {"subject", ceKeySubject}, {"dataschema", ceKeyDataSchema},
}

const (
	ceJSON   = "application/json"
	ceText   = "text/plain; charset=utf-8"
	ceBinary = "application/octet-stream"
)

// ContentType returns application/json: the stream holds one CloudEvent
// per message (the events' own content type is application/cloudevents+json).
func (CloudEventsMarshaler) ContentType() string { return "application/json" }

func (m CloudEventsMarshaler) typeKey() string {
	if m.TypeKey == "" {
		return "name"
	}
	return m.TypeKey
}

func (m CloudEventsMarshaler) marshalError(msg *message.Message, reason string, err error) error {
	return &MarshalError{Marshaler: cloudEventsMarshalerName, UUID: msg.UUID, Reason: reason, Err: err}
}

// Marshal encodes msg as a CloudEvent. The result never shares memory
// with msg.
func (m CloudEventsMarshaler) Marshal(_ string, msg *message.Message) ([]byte, error) {
	typeKey := m.typeKey()
	source, err := m.checkEvent(msg, typeKey)
	if err != nil {
		return nil, err
	}
	kind, contentType := m.dataForm(msg)
	b := make([]byte, 0, 128+len(msg.Payload)*4/3+len(msg.UUID))
	b = append(b, `{"specversion":"1.0","id":`...)
	b = jsonscan.AppendString(b, msg.UUID)
	b = append(b, `,"source":`...)
	b = jsonscan.AppendString(b, source)
	b = append(b, `,"type":`...)
	b = jsonscan.AppendString(b, msg.Metadata[typeKey])
	for _, o := range ceOptional {
		if v, ok := msg.Metadata[o.key]; ok {
			b = append(b, ',', '"')
			b = append(b, o.attr...)
			b = append(b, '"', ':')
			b = jsonscan.AppendString(b, v)
		}
	}
	b = append(b, `,"datacontenttype":`...)
	b = jsonscan.AppendString(b, contentType)
	switch kind {
	case payloadJSON:
		b = append(b, `,"data":`...)
		b = append(b, msg.Payload...)
	case payloadText:
		b = append(b, `,"data":`...)
		b = jsonscan.AppendString(b, []byte(msg.Payload))
	default:
		b = append(b, `,"data_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, msg.Payload)
		b = append(b, '"')
	}
	b = appendExtensions(b, msg, typeKey)
	return append(b, '}'), nil
}

// checkEvent refuses a message that makes no valid CloudEvent, and
// returns the event's source.
func (m CloudEventsMarshaler) checkEvent(msg *message.Message, typeKey string) (string, error) {
	if !utf8.ValidString(msg.UUID) {
		return "", m.marshalError(msg, "UUID", ErrInvalidUTF8)
	}
	for k, v := range msg.Metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return "", m.marshalError(msg, "metadata key "+jsonscan.QuoteKey(k), ErrInvalidUTF8)
		}
	}
	source, ok := msg.Metadata[ceKeySource]
	if !ok {
		source = m.Source
	}
	switch {
	case msg.UUID == "":
		return "", m.marshalError(msg, "no UUID for the event id", ErrInvalidCloudEvent)
	case msg.Metadata[typeKey] == "":
		return "", m.marshalError(msg, "no event type in metadata key "+jsonscan.QuoteKey(typeKey), ErrInvalidCloudEvent)
	case source == "":
		return "", m.marshalError(msg, "no source (set CloudEventsMarshaler.Source)", ErrInvalidCloudEvent)
	}
	if t, ok := msg.Metadata[ceKeyTime]; ok {
		if _, err := time.Parse(time.RFC3339Nano, t); err != nil {
			return "", m.marshalError(msg, "metadata "+ceKeyTime+" is not an RFC 3339 time", ErrInvalidCloudEvent)
		}
	}
	return source, nil
}

// dataForm is how the payload goes into the event ("data" as JSON or as a
// string, or "data_base64") and its datacontenttype.
func (m CloudEventsMarshaler) dataForm(msg *message.Message) (payloadKind, string) {
	kind, contentType := m.payloadForm(msg.Payload)
	if ct, ok := msg.Metadata[ceKeyDataContentType]; ok {
		contentType = ct
		// "data" as JSON only with a JSON type, as a string only with
		// another, so that Unmarshal reads it back the same.
		if (kind == payloadJSON) != cloudevents.IsJSONContentType(ct) {
			kind = payloadBase64
		}
	}
	return kind, contentType
}

// appendExtensions appends the metadata that is no CloudEvents attribute
// of its own as extension attributes, sorted by name.
func appendExtensions(b []byte, msg *message.Message, typeKey string) []byte {
	type ext struct{ name, value string }
	var extBuf [8]ext
	exts := extBuf[:0]
	for k, v := range msg.Metadata {
		if k == typeKey || isCEKey(k) {
			continue
		}
		exts = append(exts, ext{cloudevents.AttributeName(k), v})
	}
	slices.SortFunc(exts, func(a, b ext) int { return strings.Compare(a.name, b.name) })
	for _, e := range exts {
		b = append(b, ',')
		b = jsonscan.AppendString(b, e.name)
		b = append(b, ':')
		b = jsonscan.AppendString(b, e.value)
	}
	return b
}

func isCEKey(k string) bool {
	switch k {
	case ceKeySource, ceKeyTime, ceKeySubject, ceKeyDataSchema, ceKeyDataContentType:
		return true
	}
	return false
}

// payloadForm chooses how a payload is written and its content type.
func (m CloudEventsMarshaler) payloadForm(p []byte) (payloadKind, string) {
	switch r := jsonscan.Classify(p, maxWriteDepth); {
	case r == jsonscan.SameBytes, r == jsonscan.SameValue && !m.ExactPayload:
		return payloadJSON, ceJSON
	case r != jsonscan.NotJSON:
		return payloadBase64, ceJSON
	case utf8.Valid(p):
		return payloadText, ceText
	}
	return payloadBase64, ceBinary
}

// Unmarshal decodes one CloudEvent. It does not keep data.
func (m CloudEventsMarshaler) Unmarshal(_ string, data []byte) (*message.Message, error) {
	ev, err := cloudevents.Parse(data)
	if err != nil {
		var serr *jsonscan.SyntaxError
		uerr := &UnmarshalError{Marshaler: cloudEventsMarshalerName, Reason: err.Error(), Err: ErrInvalidCloudEvent}
		if errors.As(err, &serr) {
			uerr.Offset, uerr.Reason = serr.Offset, serr.Reason
		}
		return nil, uerr
	}
	payload, err := ev.Payload()
	if err != nil {
		return nil, &UnmarshalError{Marshaler: cloudEventsMarshalerName, Reason: err.Error(), Err: ErrInvalidCloudEvent}
	}
	msg := message.NewMessage(ev.Attrs["id"], payload)
	for k, v := range ev.Ext {
		msg.Metadata[k] = v
	}
	msg.Metadata[m.typeKey()] = ev.Attrs["type"]
	if src := ev.Attrs["source"]; src != m.Source {
		msg.Metadata[ceKeySource] = src
	}
	for _, o := range ceOptional {
		if v, ok := ev.Attrs[o.attr]; ok {
			msg.Metadata[o.key] = v
		}
	}
	if ct, ok := ev.Attrs["datacontenttype"]; ok {
		if _, chosen := m.payloadForm(payload); ct != chosen {
			msg.Metadata[ceKeyDataContentType] = ct
		}
	}
	return msg, nil
}
