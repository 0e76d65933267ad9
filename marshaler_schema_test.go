package durablestreams

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestJSONMarshalerOutputMatchesSchema checks every envelope the
// marshaler writes, in both modes, against schema/envelope.schema.json.
func TestJSONMarshalerOutputMatchesSchema(t *testing.T) {
	schema := loadSchema(t, "schema/envelope.schema.json")
	for mode, m := range jsonMarshalers {
		for _, tc := range trickyMessages() {
			data, err := m.Marshal("t", tc.msg)
			require.NoError(t, err)
			require.NoError(t, validateSchema(schema, decodeJSON(t, data), "$"), "%s %s: %.200s", mode, tc.name, data)
		}
	}
}

// TestSchemaValidatorCanFail: the validator below rejects what the schema
// forbids, so the test above can fail.
func TestSchemaValidatorCanFail(t *testing.T) {
	schema := loadSchema(t, "schema/envelope.schema.json")
	bad := []string{
		`[]`, `{"uuid":"u","metadata":{}}`, `{"uuid":1,"metadata":{},"payload":1}`, `{"metadata":{},"payload":1}`,
		`{"uuid":"u","payload":1}`, `{"uuid":"u","metadata":{"k":1},"payload":1}`, `{"uuid":"u","metadata":[],"payload":1}`,
		`{"uuid":"u","metadata":{},"payload":1,"payload_text":"1"}`, `{"uuid":"u","metadata":{},"payload_text":1}`,
		`{"uuid":"u","metadata":{},"payload_base64":"/w="}`, `{"uuid":"u","metadata":{},"payload_base64":"!!!!"}`,
	}
	for _, in := range bad {
		require.Error(t, validateSchema(schema, decodeJSON(t, []byte(in)), "$"), in)
	}
	good := `{"uuid":"","metadata":{"a":"b"},"payload_base64":"/wA=","future":true}`
	require.NoError(t, validateSchema(schema, decodeJSON(t, []byte(good)), "$"))
}

func loadSchema(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	schema, ok := decodeJSON(t, data).(map[string]any)
	require.True(t, ok, "schema is an object")
	return schema
}

func decodeJSON(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(data, &v), "%.200s", data)
	return v
}

// validateSchema is a small JSON Schema validator for the keywords the
// envelope schema uses; it fails on any other keyword, so the schema
// cannot say more than is tested.
func validateSchema(schema map[string]any, v any, at string) error {
	keys := make([]string, 0, len(schema))
	for k := range schema {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		arg := schema[k]
		switch k {
		case "$schema", "$id", "title", "description":
		case "type":
			if !hasType(v, arg.(string)) {
				return fmt.Errorf("%s: not of type %s", at, arg)
			}
		case "required":
			obj, ok := v.(map[string]any)
			if !ok {
				continue
			}
			for _, name := range arg.([]any) {
				if _, ok := obj[name.(string)]; !ok {
					return fmt.Errorf("%s: no %q", at, name)
				}
			}
		case "properties":
			obj, ok := v.(map[string]any)
			if !ok {
				continue
			}
			for name, sub := range arg.(map[string]any) {
				if fv, ok := obj[name]; ok {
					if err := validateSchema(sub.(map[string]any), fv, at+"."+name); err != nil {
						return err
					}
				}
			}
		case "additionalProperties":
			obj, ok := v.(map[string]any)
			if !ok {
				continue
			}
			props, _ := schema["properties"].(map[string]any)
			for name, fv := range obj {
				if _, known := props[name]; known {
					continue
				}
				if err := validateSchema(arg.(map[string]any), fv, at+"."+name); err != nil {
					return err
				}
			}
		case "oneOf":
			n := 0
			for _, sub := range arg.([]any) {
				if validateSchema(sub.(map[string]any), v, at) == nil {
					n++
				}
			}
			if n != 1 {
				return fmt.Errorf("%s: matches %d of oneOf", at, n)
			}
		case "pattern":
			s, ok := v.(string)
			if ok && !regexp.MustCompile(arg.(string)).MatchString(s) {
				return fmt.Errorf("%s: %q does not match %s", at, s, arg)
			}
		default:
			return fmt.Errorf("schema keyword %q is not supported by this validator", k)
		}
	}
	return nil
}

func hasType(v any, typ string) bool {
	switch v.(type) {
	case map[string]any:
		return typ == "object"
	case []any:
		return typ == "array"
	case string:
		return typ == "string"
	case float64:
		return typ == "number"
	case bool:
		return typ == "boolean"
	case nil:
		return typ == "null"
	}
	return false
}
