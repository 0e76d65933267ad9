package durablestreams

import (
	"errors"
	"strconv"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
)

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
	if reason, offset := validateJSON(msg.Payload, maxWriteDepth); reason != "" {
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
	if reason, offset := validateJSON(data, maxReadDepth); reason != "" {
		return nil, &UnmarshalError{Marshaler: rawJSONMarshalerName, Offset: offset, Reason: reason, Err: ErrPayloadNotJSON}
	}
	return message.NewMessage(watermill.NewUUID(), append([]byte(nil), data...)), nil
}

// validateJSON returns why data is not one JSON value, and where.
func validateJSON(data []byte, maxDepth int) (reason string, offset int) {
	var serr *jsonscan.SyntaxError
	if errors.As(jsonscan.Validate(data, maxDepth), &serr) {
		return serr.Reason, serr.Offset
	}
	return "", 0
}
