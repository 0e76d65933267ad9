package durablestreams

import (
	"strconv"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/envelope"
	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
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
// versions can add some, and reads envelopes of any version. It refuses
// "metadata" with a key twice (which Marshal never writes), as
// FramedMarshaler does, rather than keep one of its values.
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
	if msg == nil {
		return nil, nilMessageError(jsonMarshalerName)
	}
	data, err := envelope.EncodeJSON(msg, m.ExactPayload)
	if err != nil {
		_, reason := offsetReason(err)
		return nil, &MarshalError{Marshaler: jsonMarshalerName, UUID: msg.UUID, Reason: reason, Err: ErrInvalidUTF8}
	}
	return data, nil
}

// Unmarshal decodes one envelope. It accepts any JSON formatting of it
// and does not keep data.
func (JSONMarshaler) Unmarshal(_ string, data []byte) (*message.Message, error) {
	msg, err := envelope.DecodeJSON(data)
	if err != nil {
		return nil, newUnmarshalError(jsonMarshalerName, err, ErrInvalidEnvelope)
	}
	return msg, nil
}

// RawJSONMarshaler writes only the payload, which must be one JSON value,
// to a JSON-mode stream (application/json): for streams read by browsers
// or other tools that expect plain JSON messages. UUID and metadata are
// not written; Unmarshal gives each message a new UUID and no metadata.
//
// The reference server re-prints every message compactly (see
// JSONMarshaler), so a payload reads back in JavaScript's JSON.stringify
// form, which may differ from the bytes written. It also adds an "offset"
// to the "headers" object of State Protocol messages (top-level objects
// whose "headers" has a string "operation" or "control").
//
// Marshal fails with ErrPayloadNotJSON for a payload that is not JSON,
// not UTF-8, or nested deeper than the server can re-print.
type RawJSONMarshaler struct{}

var _ marshalerUnmarshaler = RawJSONMarshaler{}

const rawJSONMarshalerName = "RawJSONMarshaler"

// ContentType returns application/json.
func (RawJSONMarshaler) ContentType() string { return "application/json" }

// Marshal returns msg.Payload itself (capacity clipped, so appending to the
// result never writes into it) after checking that it is JSON.
func (RawJSONMarshaler) Marshal(_ string, msg *message.Message) ([]byte, error) {
	if msg == nil {
		return nil, nilMessageError(rawJSONMarshalerName)
	}
	if err := jsonscan.Validate(msg.Payload, jsonscan.MaxWriteDepth); err != nil {
		offset, reason := offsetReason(err)
		return nil, &MarshalError{
			Marshaler: rawJSONMarshalerName,
			UUID:      msg.UUID,
			Reason:    reason + " at byte " + strconv.Itoa(offset),
			Err:       ErrPayloadNotJSON,
		}
	}
	return msg.Payload[:len(msg.Payload):len(msg.Payload)], nil
}

// Unmarshal returns a message with a copy of data as its payload.
func (RawJSONMarshaler) Unmarshal(_ string, data []byte) (*message.Message, error) {
	if err := jsonscan.Validate(data, jsonscan.MaxDepth); err != nil {
		return nil, newUnmarshalError(rawJSONMarshalerName, err, ErrPayloadNotJSON)
	}
	return message.NewMessage(watermill.NewUUID(), append([]byte(nil), data...)), nil
}
