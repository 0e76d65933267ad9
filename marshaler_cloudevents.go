package durablestreams

import (
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/cloudevents"
	"github.com/durablestreams/watermill-durablestreams/internal/envelope"
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
// non-string extension values their JSON text. An extension cannot stand
// in for an attribute: one whose name decodes to "ce_source", "ce_time",
// "ce_subject", "ce_dataschema", "ce_datacontenttype" or TypeKey keeps its
// raw name ("cez5fsource") as its key, and one named exactly TypeKey gives
// way to the type. An extension named as such a key itself ("ce_time", no
// valid attribute name), or two whose names decode to one key ("zq1" and
// "z7aq1"), make the event invalid.
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

// ContentType returns application/json: the stream holds one CloudEvent
// per message (the events' own content type is application/cloudevents+json).
func (CloudEventsMarshaler) ContentType() string { return "application/json" }

// codec is the wire mapping with m's options and defaults.
func (m CloudEventsMarshaler) codec() cloudevents.Codec {
	typeKey := m.TypeKey
	if typeKey == "" {
		typeKey = "name"
	}
	return cloudevents.Codec{Source: m.Source, TypeKey: typeKey, ExactPayload: m.ExactPayload}
}

// Marshal encodes msg as a CloudEvent. The result never shares memory
// with msg.
func (m CloudEventsMarshaler) Marshal(_ string, msg *message.Message) ([]byte, error) {
	if msg == nil {
		return nil, nilMessageError(cloudEventsMarshalerName)
	}
	if reason := envelope.InvalidUTF8(msg); reason != "" {
		return nil, &MarshalError{Marshaler: cloudEventsMarshalerName, UUID: msg.UUID, Reason: reason, Err: ErrInvalidUTF8}
	}
	data, err := m.codec().Marshal(msg)
	if err != nil {
		return nil, &MarshalError{Marshaler: cloudEventsMarshalerName, UUID: msg.UUID, Reason: err.Error(), Err: ErrInvalidCloudEvent}
	}
	return data, nil
}

// Unmarshal decodes one CloudEvent. It does not keep data.
func (m CloudEventsMarshaler) Unmarshal(_ string, data []byte) (*message.Message, error) {
	msg, err := m.codec().Unmarshal(data)
	if err != nil {
		return nil, newUnmarshalError(cloudEventsMarshalerName, err, ErrInvalidCloudEvent)
	}
	return msg, nil
}
