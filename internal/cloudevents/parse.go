package cloudevents

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
)

// Event is a parsed structured-mode CloudEvent.
type Event struct {
	Attrs   map[string]string // the spec's string attributes
	Ext     map[string]string // extension attributes by name, values as text
	data    []byte            // raw JSON of "data", if present
	base64  []byte            // raw JSON string of "data_base64", if present
	dataStr bool              // data is a JSON string
}

func ceFail(reason string) error { return errors.New(reason) }

// Parse checks the required attributes and their types. Its errors
// give the reason in their text; a *jsonscan.SyntaxError also the offset.
func Parse(data []byte) (*Event, error) {
	if !utf8.Valid(data) {
		return nil, ceFail("not valid UTF-8")
	}
	var c jsonscan.Cursor
	c.Reset(data, jsonscan.MaxDepth)
	ev := &Event{Attrs: map[string]string{}, Ext: map[string]string{}}
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
			return nil, ceFail("duplicate attribute " + jsonscan.QuoteKey(name))
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
	if ev.Attrs["specversion"] != "1.0" {
		return nil, ceFail(`"specversion" is not "1.0"`)
	}
	for _, required := range []string{"id", "source", "type"} {
		if ev.Attrs[required] == "" {
			return nil, ceFail("no " + jsonscan.QuoteKey(required))
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
func (ev *Event) set(name string, v []byte) error {
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
	case contextAttributes[name]:
		if v[0] != '"' {
			return ceFail(jsonscan.QuoteKey(name) + " is not a string")
		}
		ev.Attrs[name] = unquote(v, true)
		return nil
	}
	switch v[0] {
	case '"':
		ev.Ext[name] = unquote(v, true)
	case '{', '[':
		return ceFail("extension " + jsonscan.QuoteKey(name) + " is not a string, number or boolean")
	default:
		ev.Ext[name] = string(v)
	}
	return nil
}

// Payload decodes "data" or "data_base64".
func (ev *Event) Payload() ([]byte, error) {
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
	case ev.dataStr && !IsJSONContentType(ev.Attrs["datacontenttype"]):
		return []byte(unquote(ev.data, true)), nil
	}
	return append([]byte(nil), ev.data...), nil
}

// IsJSONContentType reports whether data of this type is JSON
// (application/json or a +json type; no content type means JSON too).
func IsJSONContentType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "" || mt == "application/json" || strings.HasSuffix(mt, "+json")
}
