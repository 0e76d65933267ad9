package cloudevents

import (
	"encoding/base64"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
)

// Metadata keys of the attributes that are not extensions.
const (
	KeySource          = "ce_source"
	KeyTime            = "ce_time"
	KeySubject         = "ce_subject"
	KeyDataSchema      = "ce_dataschema"
	KeyDataContentType = "ce_datacontenttype"
)

// optional maps the optional string attributes to their metadata keys.
var optional = [...]struct{ attr, key string }{
	{"time", KeyTime}, {"subject", KeySubject}, {"dataschema", KeyDataSchema},
}

// IsAttributeKey reports whether metadata key k holds an attribute of its
// own rather than an extension.
func IsAttributeKey(k string) bool {
	switch k {
	case KeySource, KeyTime, KeySubject, KeyDataSchema, KeyDataContentType:
		return true
	}
	return false
}

// Content types the codec chooses for a payload.
const (
	contentJSON   = "application/json"
	contentText   = "text/plain; charset=utf-8"
	contentBinary = "application/octet-stream"
)

// DataKind is how the payload goes into an event.
type DataKind int

const (
	DataJSON   DataKind = iota // "data" as JSON
	DataText                   // "data" as a string
	DataBase64                 // "data_base64"
)

// Codec maps messages to structured-mode events and back, as the root
// package's CloudEventsMarshaler documents. Its errors give the reason in
// their text; a *jsonscan.SyntaxError also the offset.
type Codec struct {
	Source       string // of messages without a KeySource value
	TypeKey      string // the metadata key of the event type; not empty
	ExactPayload bool   // JSON that re-printing would change goes in "data_base64"
}

// Marshal encodes msg as an event. msg must be valid UTF-8: the caller
// checks it, to report it as its own error. The result never shares
// memory with msg.
func (c Codec) Marshal(msg *message.Message) ([]byte, error) {
	source, err := c.check(msg)
	if err != nil {
		return nil, err
	}
	kind, contentType := c.dataForm(msg)
	b := make([]byte, 0, 128+len(msg.Payload)*4/3+len(msg.UUID))
	b = append(b, `{"specversion":"1.0","id":`...)
	b = jsonscan.AppendString(b, msg.UUID)
	b = append(b, `,"source":`...)
	b = jsonscan.AppendString(b, source)
	b = append(b, `,"type":`...)
	b = jsonscan.AppendString(b, msg.Metadata[c.TypeKey])
	for _, o := range optional {
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
	case DataJSON:
		b = append(b, `,"data":`...)
		b = append(b, msg.Payload...)
	case DataText:
		b = append(b, `,"data":`...)
		b = jsonscan.AppendString(b, []byte(msg.Payload))
	default:
		b = append(b, `,"data_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, msg.Payload)
		b = append(b, '"')
	}
	b = c.appendExtensions(b, msg)
	return append(b, '}'), nil
}

// check refuses a message that makes no valid CloudEvent, and returns the
// event's source.
func (c Codec) check(msg *message.Message) (string, error) {
	source, ok := msg.Metadata[KeySource]
	if !ok {
		source = c.Source
	}
	switch {
	case msg.UUID == "":
		return "", ceFail("no UUID for the event id")
	case msg.Metadata[c.TypeKey] == "":
		return "", ceFail("no event type in metadata key " + jsonscan.QuoteKey(c.TypeKey))
	case source == "":
		return "", ceFail("no source (set CloudEventsMarshaler.Source)")
	}
	if t, ok := msg.Metadata[KeyTime]; ok {
		if _, err := time.Parse(time.RFC3339Nano, t); err != nil {
			return "", ceFail("metadata " + KeyTime + " is not an RFC 3339 time")
		}
	}
	return source, nil
}

// dataForm is how the payload goes into the event and its
// datacontenttype.
func (c Codec) dataForm(msg *message.Message) (DataKind, string) {
	kind, contentType := c.PayloadForm(msg.Payload)
	if ct, ok := msg.Metadata[KeyDataContentType]; ok {
		contentType = ct
		// "data" as JSON only with a JSON type, as a string only with
		// another, so that Unmarshal reads it back the same.
		if (kind == DataJSON) != IsJSONContentType(ct) {
			kind = DataBase64
		}
	}
	return kind, contentType
}

// PayloadForm chooses how a payload is written and its content type,
// unless metadata names another.
func (c Codec) PayloadForm(p []byte) (DataKind, string) {
	switch r := jsonscan.Classify(p, jsonscan.MaxWriteDepth); {
	case r == jsonscan.SameBytes, r == jsonscan.SameValue && !c.ExactPayload:
		return DataJSON, contentJSON
	case r != jsonscan.NotJSON:
		return DataBase64, contentJSON
	case utf8.Valid(p):
		return DataText, contentText
	}
	return DataBase64, contentBinary
}

// appendExtensions appends the metadata that is no attribute of its own
// as extension attributes, sorted by name.
func (c Codec) appendExtensions(b []byte, msg *message.Message) []byte {
	type ext struct{ name, value string }
	var extBuf [8]ext
	exts := extBuf[:0]
	for k, v := range msg.Metadata {
		if k == c.TypeKey || IsAttributeKey(k) {
			continue
		}
		exts = append(exts, ext{AttributeName(k), v})
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

// Unmarshal decodes one event. It does not keep data.
func (c Codec) Unmarshal(data []byte) (*message.Message, error) {
	ev, err := Parse(data)
	if err != nil {
		return nil, err
	}
	payload, err := ev.Payload()
	if err != nil {
		return nil, err
	}
	msg := message.NewMessage(ev.Attrs["id"], payload)
	if err := c.extensionMetadata(ev.Ext, msg.Metadata); err != nil {
		return nil, err
	}
	msg.Metadata[c.TypeKey] = ev.Attrs["type"]
	if src := ev.Attrs["source"]; src != c.Source {
		msg.Metadata[KeySource] = src
	}
	for _, o := range optional {
		if v, ok := ev.Attrs[o.attr]; ok {
			msg.Metadata[o.key] = v
		}
	}
	if ct, ok := ev.Attrs["datacontenttype"]; ok {
		if _, chosen := c.PayloadForm(payload); ct != chosen {
			msg.Metadata[KeyDataContentType] = ct
		}
	}
	return msg, nil
}

// extensionMetadata sets the metadata of the extension attributes ext (by
// name). A name that decodes to a key of an attribute of the codec's own
// (IsAttributeKey, TypeKey) keeps its raw name as its key, so that it
// cannot shadow the attribute; a raw name that is the TypeKey itself
// gives way to the type, which Unmarshal sets after. A raw name that is
// such a key itself ("ce_time", not a valid attribute name) and two names
// that decode to one key refuse the event: Marshal never writes them.
func (c Codec) extensionMetadata(ext map[string]string, md message.Metadata) error {
	var from map[string]string // key → the attribute name it came from
	if len(ext) > 1 {
		from = make(map[string]string, len(ext))
	}
	for name, v := range ext {
		if IsAttributeKey(name) {
			return ceFail("extension " + jsonscan.QuoteKey(name) + " is not a valid attribute name")
		}
		key := MetadataKey(name)
		if key != name && (key == c.TypeKey || IsAttributeKey(key)) {
			key = name
		}
		if from != nil {
			if other, dup := from[key]; dup {
				a, b := min(name, other), max(name, other)
				return ceFail("extensions " + jsonscan.QuoteKey(a) + " and " + jsonscan.QuoteKey(b) +
					" are both metadata key " + jsonscan.QuoteKey(key))
			}
			from[key] = name
		}
		md[key] = v
	}
	return nil
}
