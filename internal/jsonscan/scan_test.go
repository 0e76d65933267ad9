package jsonscan

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	valid := []string{
		`0`, `-0`, `1.5e+3`, `1E-2`, `-12.0`, `"a\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"`, `"\ud800"`, ` true `, "\t\r\nnull\n",
		`false`, `[]`, `{}`, `[1,[2,{"a":[{}]}]]`, `{"a":1,"a":2}`, `{"":""}`, "\"\x7f\u2028😀\"",
		strings.Repeat("[", 10) + strings.Repeat("]", 10),
	}
	tests := []struct {
		in     string
		reason string
		offset int
		eof    bool
	}{
		{``, reasonEOF, 0, true},
		{` `, reasonEOF, 1, true},
		{`tru`, reasonEOF, 0, true},
		{`trux`, "invalid literal", 0, false},
		{`nul`, reasonEOF, 0, true},
		{`01`, "data after the JSON value", 1, false},
		{`-`, reasonEOF, 0, true},
		{`-a`, "invalid number", 1, false},
		{`1.`, reasonEOF, 0, true},
		{`1.e5`, "invalid number", 2, false},
		{`1e`, reasonEOF, 0, true},
		{`1e+`, reasonEOF, 0, true},
		{`1ex`, "invalid number", 2, false},
		{`+1`, "invalid character", 0, false},
		{`.5`, "invalid character", 0, false},
		{`NaN`, "invalid character", 0, false},
		{`"abc`, reasonEOF, 4, true},
		{`"a\`, reasonEOF, 2, true},
		{`"\x"`, "invalid escape", 1, false},
		{`"\u12"`, "invalid \\u escape", 1, false},
		{`"\u12`, reasonEOF, 1, true},
		{"\"\x01\"", "control character in string", 1, false},
		{"\"\xff\"", "not valid UTF-8", 1, false},
		{`[1,]`, "invalid character", 3, false},
		{`[1 2]`, "expected ',' or ']'", 3, false},
		{`{"a" 1}`, "expected ':'", 5, false},
		{`{"a":1 "b":2}`, "expected ',' or '}'", 7, false},
		{`{1:2}`, "expected object key", 1, false},
		{`{"a":1,}`, "expected object key", 7, false},
		{`[1]]`, "data after the JSON value", 3, false},
		{`[`, reasonEOF, 1, true},
		{`{"a":`, reasonEOF, 5, true},
		{strings.Repeat("[", 11) + strings.Repeat("]", 11), "nested too deeply", 10, false},
	}
	for _, v := range valid {
		require.NoError(t, Validate([]byte(v), 10), "%q", v)
	}
	for _, tc := range tests {
		err := Validate([]byte(tc.in), 10)
		var serr *SyntaxError
		require.ErrorAs(t, err, &serr, "%q", tc.in)
		assert.Equal(t, tc.reason, serr.Reason, "%q", tc.in)
		assert.Equal(t, tc.offset, serr.Offset, "%q", tc.in)
		assert.Equal(t, tc.eof, errors.Is(err, io.ErrUnexpectedEOF), "%q", tc.in)
		assert.False(t, json.Valid([]byte(tc.in)) && !strings.Contains(tc.reason, "UTF-8") && !strings.Contains(tc.reason, "deeply"), "%q", tc.in)
	}
}

func TestClassify(t *testing.T) {
	tests := map[Reprint][]string{
		SameBytes: {
			`0`, `-1`, `42`, `999999999999999`, `9007199254740992`, `1.5`, `-0.25`, `0.000001`, `1e-7`, `1e+21`,
			`1.7976931348623157e+308`, `5e-324`, `123456789012345680000`,
			`true`, `false`, `null`, `""`, `"a\"b\\c"`, `"\b\f\n\r\t"`, `"\u0000\u001f\u000b"`, "\"\x7f\"",
			"\"<&>\u2028\u2029é😀\"", `[]`, `{}`, `[1,[2,[3]],{"a":{}}]`, `{"a":1,"b":2,"A":3,"01":4,"-1":5,"1.0":6,"__proto__":7}`,
			`{"":""}`, `{"0":1}`, `{"0":1,"1":2,"a":3}`, `{"2":1,"10":2}`, `{"4294967295":1,"a":2}`,
		},
		SameValue: {
			` 1`, `1 `, `[1, 2]`, "{\"a\":1}\n", `{ }`, `1.0`, `1.50`, `1E5`, `1e5`, `1e21`, `100000000000000000000000`,
			`0.0000001`, `"\u0041"`, `"\u001F"`, `"\u000a"`, `"\/"`, `"\ud800"`, `"\ud83d\ude00"`, `"\u00e9"`, `"\u003c&\u003e"`,
			`{"a":"\u003cb\u003e"}`, `0.10`, `-0.0e1`[1:], `12345678901234567000.0`, `0e400`, `{"\u0030":1}`,
		},
		ChangesValue: {
			`-0`, `-0.0`, `12345678901234567890`, `9007199254740993`, `1e400`, `-1e400`, `1e-400`, `0.1000000000000000000001`,
			`{"a":1,"0":2}`, `{"1":1,"0":2}`, `{"10":1,"9":2}`, `{"a":1,"4294967295":2}`, `{"a":1,"a":2}`, `{"a":1,"\u0061":2}`,
			`[{"x":{"a":1,"a":2}}]`,
			`{"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k1":1}`,
		},
		NotJSON: {
			``, `tru`, `[1,]`, `{"a"}`, `"abc`, "\"\x01\"", "\"\xff\"", `NaN`, `Infinity`, `+1`, `.5`, `1.`, `[1]]`,
			strings.Repeat("[", 6) + strings.Repeat("]", 6),
		},
	}
	for want, inputs := range tests {
		for _, in := range inputs {
			assert.Equal(t, want, Classify([]byte(in), 5), "%q", in)
		}
	}
}

func TestAppendJSNumber(t *testing.T) {
	// Expected values printed by Node.js: String(x).
	tests := map[float64]string{
		0: "0", 1: "1", -1: "-1", 0.1: "0.1", 1.5: "1.5", 100: "100", 1e20: "100000000000000000000",
		1e21: "1e+21", 1.5e21: "1.5e+21", 1e-6: "0.000001", 1e-7: "1e-7", 1.23e-7: "1.23e-7", 123e-20: "1.23e-18",
		9007199254740993: "9007199254740992", 5e-324: "5e-324", 1.7976931348623157e308: "1.7976931348623157e+308",
		0.000123: "0.000123", 123.456: "123.456",
	}
	for f, want := range tests {
		assert.Equal(t, want, string(appendJSNumber(nil, f)), "%v", f)
	}
}

func TestSameDecimal(t *testing.T) {
	same := [][2]string{{"1", "1.0"}, {"100", "1e2"}, {"0.001", "1E-3"}, {"0", "0.000"}, {"0", "0e99"}, {"120", "12.0e1"}, {"-5", "-0.5e1"}}
	differ := [][2]string{{"1", "10"}, {"0", "-0"}, {"1", "-1"}, {"1e2", "1e3"}, {"0.1", "0.01"}}
	for _, p := range same {
		assert.True(t, sameDecimal([]byte(p[0]), []byte(p[1])), "%s %s", p[0], p[1])
	}
	for _, p := range differ {
		assert.False(t, sameDecimal([]byte(p[0]), []byte(p[1])), "%s %s", p[0], p[1])
	}
}

func TestAppendStringAndUnquoted(t *testing.T) {
	s := "a\"\\\b\f\n\r\t\x01\x1f\x7f<&>\u2028é😀"
	quoted := AppendString(nil, s)
	assert.Equal(t, `"a\"\\\b\f\n\r\t\u0001\u001f`+"\x7f<&>\u2028é😀\"", string(quoted))
	var back string
	require.NoError(t, json.Unmarshal(quoted, &back))
	assert.Equal(t, s, back)
	assert.Equal(t, s, string(AppendUnquoted(nil, quoted)))
	assert.Equal(t, "A/😀\uFFFDx\uFFFD", string(AppendUnquoted(nil, []byte(`"\u0041\/\ud83d\ude00\ud800x\udc00"`))))
}

func TestCursor(t *testing.T) {
	var c Cursor
	c.Reset([]byte(` {"k\u0031" : [1, {"a":2}] , "s":"x"}`), 3)
	c.SkipSpace()
	require.True(t, c.Consume('{'))
	raw, escaped, err := c.String()
	require.NoError(t, err)
	assert.Equal(t, `"k\u0031"`, string(raw))
	assert.True(t, escaped)
	c.SkipSpace()
	require.True(t, c.Consume(':'))
	c.SkipSpace()
	v, err := c.Value()
	require.NoError(t, err)
	assert.Equal(t, `[1, {"a":2}]`, string(v))
	c.SkipSpace()
	require.True(t, c.Consume(','))
	c.SkipSpace()
	_, escaped, err = c.String()
	require.NoError(t, err)
	assert.False(t, escaped)
	b, ok := c.Peek()
	assert.True(t, ok)
	assert.Equal(t, byte(':'), b)

	c.Reset([]byte(`[[[[1]]]]`), 3)
	_, err = c.Value()
	var serr *SyntaxError
	require.ErrorAs(t, err, &serr)
	assert.Equal(t, 3, serr.Offset)
	c.Reset([]byte(`x`), 3)
	_, _, err = c.String()
	require.ErrorAs(t, err, &serr)
	c.Reset([]byte(`"ab`), 3)
	_, _, err = c.String()
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
}

func validUTF8(b []byte) bool { return invalidUTF8At(b) == len(b) }
