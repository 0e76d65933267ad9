package envelope

import (
	"encoding/base64"
	"slices"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
)

// payloadKind is the field an envelope holds the payload in.
type payloadKind int

const (
	payloadJSON   payloadKind = iota // "payload": the JSON itself
	payloadText                      // "payload_text": a JSON string
	payloadBase64                    // "payload_base64"
)

// InvalidUTF8 names the part of msg that is not valid UTF-8, which a JSON
// text cannot carry unchanged: "UUID" or "metadata key …"; "" if none.
func InvalidUTF8(msg *message.Message) string {
	if !utf8.ValidString(msg.UUID) {
		return invalidUUID
	}
	for k, v := range msg.Metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return invalidKey(k)
		}
	}
	return ""
}

const invalidUUID = "UUID"

func invalidKey(k string) string { return "metadata key " + jsonscan.QuoteKey(k) }

// kindOf chooses the payload field: "payload" for JSON whose value the
// reference server's re-printing keeps (with exact, whose bytes it keeps),
// else the field that keeps the bytes.
func kindOf(payload []byte, exact bool) payloadKind {
	switch r := jsonscan.Classify(payload, jsonscan.MaxWriteDepth); {
	case r == jsonscan.SameBytes, r == jsonscan.SameValue && !exact:
		return payloadJSON
	case utf8.Valid(payload):
		return payloadText
	}
	return payloadBase64
}

// EncodeJSON encodes msg as an envelope, its payload under "payload" only
// as kindOf allows. It fails only with an *Error whose Reason is what
// InvalidUTF8 says, checked in the pass that sizes the envelope. The
// result never shares memory with msg.
func EncodeJSON(msg *message.Message, exactPayload bool) ([]byte, error) {
	if !utf8.ValidString(msg.UUID) {
		return nil, &Error{Reason: invalidUUID}
	}
	size := len(`{"uuid":"","metadata":{},"payload_base64":""}`) + len(msg.UUID)
	var keyBuf [8]string
	keys := keyBuf[:0]
	for k, v := range msg.Metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, &Error{Reason: invalidKey(k)}
		}
		keys = append(keys, k)
		size += len(k) + len(v) + 6
	}
	slices.Sort(keys) // the same message always gives the same bytes

	payload := msg.Payload
	kind := kindOf(payload, exactPayload)
	switch kind {
	case payloadJSON:
		size += len(payload)
	case payloadText:
		size += len(payload) + len(payload)/8 // room for some escapes
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
