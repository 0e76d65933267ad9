package durablestreams

import (
	"encoding/base64"
	"errors"
	"unicode/utf8"

	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
)

// cloudEvent is a parsed structured-mode CloudEvent.
type cloudEvent struct {
	attrs   map[string]string // the spec's string attributes
	ext     map[string]string // metadata from extension attributes
	data    []byte            // raw JSON of "data", if present
	base64  []byte            // raw JSON string of "data_base64", if present
	dataStr bool              // data is a JSON string
}

func ceFail(reason string) error { return errors.New(reason) }

// parseCloudEvent checks the required attributes and their types.
func parseCloudEvent(data []byte) (*cloudEvent, error) {
	if !utf8.Valid(data) {
		return nil, ceFail("not valid UTF-8")
	}
	var c jsonscan.Cursor
	c.Reset(data, maxReadDepth)
	ev := &cloudEvent{attrs: map[string]string{}, ext: map[string]string{}}
	seen := map[string]bool{}
	c.SkipSpace()
	if !c.Consume('{') {
		return nil, c.Fail("not a JSON object")
	}
	c.SkipSpace()
	for !c.Consume('}') {
		if len(seen) > 0 && !c.Consume(',') {
			return nil, c.Fail("expected ',' or '}'")
		}
		c.SkipSpace()
		raw, escaped, err := c.String()
		if err != nil {
			return nil, err
		}
		name := unquote(raw, escaped)
		if seen[name] {
			return nil, ceFail("duplicate attribute " + quoteKey(name))
		}
		seen[name] = true
		c.SkipSpace()
		if !c.Consume(':') {
			return nil, c.Fail("expected ':'")
		}
		c.SkipSpace()
		v, err := c.Value()
		if err != nil {
			return nil, err
		}
		if err := ev.set(name, v); err != nil {
			return nil, err
		}
		c.SkipSpace()
	}
	c.SkipSpace()
	if !c.AtEnd() {
		return nil, c.Fail("data after the event")
	}
	if ev.attrs["specversion"] != "1.0" {
		return nil, ceFail(`"specversion" is not "1.0"`)
	}
	for _, required := range []string{"id", "source", "type"} {
		if ev.attrs[required] == "" {
			return nil, ceFail("no " + quoteKey(required))
		}
	}
	if ev.data != nil && ev.base64 != nil {
		return nil, ceFail(`both "data" and "data_base64"`)
	}
	return ev, nil
}

func unquote(raw []byte, escaped bool) string {
	if escaped {
		return string(jsonscan.AppendUnquoted(nil, raw))
	}
	return string(raw[1 : len(raw)-1])
}

// set records one attribute with its raw JSON value v.
func (ev *cloudEvent) set(name string, v []byte) error {
	switch {
	case name == "data":
		ev.data, ev.dataStr = v, v[0] == '"'
		return nil
	case name == "data_base64":
		if v[0] != '"' {
			return ceFail(`"data_base64" is not a string`)
		}
		ev.base64 = v
		return nil
	case string(v) == "null":
		return nil // an absent attribute
	case ceContextAttributes[name]:
		if v[0] != '"' {
			return ceFail(quoteKey(name) + " is not a string")
		}
		ev.attrs[name] = unquote(v, true)
		return nil
	}
	switch v[0] {
	case '"':
		ev.ext[ceMetadataKey(name)] = unquote(v, true)
	case '{', '[':
		return ceFail("extension " + quoteKey(name) + " is not a string, number or boolean")
	default:
		ev.ext[ceMetadataKey(name)] = string(v)
	}
	return nil
}

// payload decodes "data" or "data_base64".
func (ev *cloudEvent) payload() ([]byte, error) {
	switch {
	case ev.base64 != nil:
		s := unquote(ev.base64, true)
		p, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, ceFail(`"data_base64" is not base64`)
		}
		return p, nil
	case ev.data == nil:
		return nil, nil
	case ev.dataStr && !isJSONContentType(ev.attrs["datacontenttype"]):
		return []byte(unquote(ev.data, true)), nil
	}
	return append([]byte(nil), ev.data...), nil
}
