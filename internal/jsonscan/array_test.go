package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chunkReader returns data in chunks of 1 to maxChunk bytes, sometimes
// with no bytes at all, chosen by seed.
type chunkReader struct {
	data     []byte
	r        *rand.Rand
	maxChunk int
}

func newChunkReader(data []byte, seed uint64, maxChunk int) *chunkReader {
	return &chunkReader{data: data, r: rand.New(rand.NewPCG(seed, seed>>7)), maxChunk: maxChunk}
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	if c.r.IntN(8) == 0 {
		return 0, nil
	}
	n := min(len(p), len(c.data), 1+c.r.IntN(c.maxChunk))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// readAll reads every element of body through an ArrayReader fed in
// random chunks.
func readAll(body []byte, seed uint64, maxElem int) ([]string, error) {
	a := NewArrayReader(newChunkReader(body, seed, 7), maxElem)
	var out []string
	for {
		e, err := a.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, string(e))
	}
}

func TestSplitArray(t *testing.T) {
	ok := map[string][]string{
		``:                               nil,
		" \n\t\r":                        nil,
		`[]`:                             nil,
		` [ ] `:                          nil,
		`[1]`:                            {`1`},
		"[ 1 ,\n\"a,]\" , {\"b\":[2]} ]": {`1`, `"a,]"`, `{"b":[2]}`},
		`[null,true,false,-0.5e+3,[]]`:   {`null`, `true`, `false`, `-0.5e+3`, `[]`},
		"[\"\xff\"]":                     {"\"\xff\""}, // UTF-8 is the decoder's business
	}
	for in, want := range ok {
		got, err := SplitArray([]byte(in))
		require.NoError(t, err, "%q", in)
		var gotS []string
		for _, e := range got {
			gotS = append(gotS, string(e))
		}
		assert.Equal(t, want, gotS, "%q", in)
		viaReader, err := readAll([]byte(in), 1, 1<<20)
		require.NoError(t, err, "%q", in)
		assert.Equal(t, want, viaReader, "%q", in)
	}
	bad := []struct {
		in, reason string
		offset     int
		eof        bool
	}{
		{`{}`, "not a JSON array", 0, false},
		{`1`, "not a JSON array", 0, false},
		{`[`, reasonEOF, 1, true},
		{`[1`, reasonEOF, 2, true},
		{`[1,`, reasonEOF, 3, true},
		{`[1,]`, "invalid character", 3, false},
		{`[1 2]`, "expected ',' or ']'", 3, false},
		{`[1]x`, "data after the JSON array", 3, false},
		{`[1] []`, "data after the JSON array", 4, false},
		{`[01]`, "expected ',' or ']'", 2, false},
		{`[{"a" 1}]`, "expected ':'", 6, false},
		{`["\x"]`, "invalid escape", 2, false},
		{`[1,"ab`, reasonEOF, 6, true},
		{`[tru]`, "invalid literal", 1, false},
		{`[` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `]`, "nested too deeply", MaxDepth, false},
	}
	for _, tc := range bad {
		for _, via := range []string{"SplitArray", "ArrayReader"} {
			var err error
			if via == "SplitArray" {
				_, err = SplitArray([]byte(tc.in))
			} else {
				_, err = readAll([]byte(tc.in), 2, 1<<20)
			}
			var serr *SyntaxError
			in := short(tc.in)
			require.ErrorAs(t, err, &serr, "%s %q", via, in)
			assert.Equal(t, tc.reason, serr.Reason, "%s %q", via, in)
			assert.Equal(t, tc.offset, serr.Offset, "%s %q", via, in)
			assert.Equal(t, tc.eof, errors.Is(err, io.ErrUnexpectedEOF), "%s %q", via, in)
		}
	}
	deepest := `[` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `]`
	_, err := SplitArray([]byte(deepest))
	require.NoError(t, err, "encoding/json's limit counts the array")
}

func TestSplitArraySharesMemory(t *testing.T) {
	body := []byte(`[1,22]`)
	elems, err := SplitArray(body)
	require.NoError(t, err)
	body[1] = '7'
	assert.Equal(t, "7", string(elems[0]))
	assert.Equal(t, 1, cap(elems[0]), "appending to an element must not write into the body")
}

func TestArrayReaderLimits(t *testing.T) {
	body := []byte(`[1,"12345678",3]`)
	a := NewArrayReader(bytes.NewReader(body), 10)
	e, err := a.Next()
	require.NoError(t, err)
	assert.Equal(t, "1", string(e))
	e, err = a.Next()
	require.NoError(t, err, "an element of exactly maxElem bytes")
	assert.Equal(t, `"12345678"`, string(e))

	for seed := range uint64(20) {
		_, err = readAll(body, seed, 9)
		require.ErrorIs(t, err, ErrElementTooLarge, "seed %d", seed)
		elems, err := readAll([]byte(`[12345,true,"abc"]`), seed, 5)
		require.NoError(t, err, "seed %d: elements of exactly maxElem bytes, cut anywhere", seed)
		assert.Equal(t, []string{"12345", "true", `"abc"`}, elems)
		_, err = readAll([]byte(`[123456]`), seed, 5)
		require.ErrorIs(t, err, ErrElementTooLarge, "seed %d", seed)
	}
	a = NewArrayReader(bytes.NewReader([]byte(`[`+strings.Repeat(" ", 1<<20)+`1]`)), 4)
	e, err = a.Next()
	require.NoError(t, err, "whitespace between elements does not count")
	assert.Equal(t, "1", string(e))

	// A long string read in small pieces is scanned once, not again for
	// every piece; the buffer stays near the element's size.
	big := `"` + strings.Repeat("x", 1<<20) + `"`
	a = NewArrayReader(iotest.HalfReader(strings.NewReader(`[`+big+`,`+big+`]`)), len(big))
	for range 2 {
		e, err = a.Next()
		require.NoError(t, err)
		assert.Equal(t, big, string(e))
	}
	_, err = a.Next()
	require.Equal(t, io.EOF, err)
	assert.LessOrEqual(t, cap(a.buf), 2*len(big)+2*readSize)
}

func TestArrayReaderErrors(t *testing.T) {
	boom := errors.New("boom")
	a := NewArrayReader(io.MultiReader(strings.NewReader(`[1,2`), iotest.ErrReader(boom)), 100)
	e, err := a.Next()
	require.NoError(t, err)
	assert.Equal(t, "1", string(e))
	_, err = a.Next()
	require.ErrorIs(t, err, boom, "2 may go on: the reader's error comes first")
	_, err = a.Next()
	require.ErrorIs(t, err, boom, "errors are sticky")

	a = NewArrayReader(strings.NewReader(`[1,2`), 100)
	_, _ = a.Next()
	e, err = a.Next()
	require.NoError(t, err, "the input ended, so the number did")
	assert.Equal(t, "2", string(e))
	_, err = a.Next()
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	var serr *SyntaxError
	require.ErrorAs(t, err, &serr)

	a = NewArrayReader(strings.NewReader(``), 100)
	_, err = a.Next()
	require.Equal(t, io.EOF, err)
	_, err = a.Next()
	require.Equal(t, io.EOF, err)

	a = NewArrayReader(readerFunc(func([]byte) (int, error) { return 0, nil }), 100)
	_, err = a.Next()
	require.ErrorIs(t, err, io.ErrNoProgress)
}

// short keeps failure messages readable.
func short(s string) string {
	if len(s) > 80 {
		return s[:40] + "…" + s[len(s)-20:]
	}
	return s
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// FuzzSplitArray: SplitArray and ArrayReader, fed in any chunks, accept
// exactly what json.Unmarshal into []json.RawMessage accepts and cut the
// same elements; Validate agrees with json.Valid on UTF-8 text, and
// Classify only says SameBytes of text that is compact and re-prints to
// the same value.
func FuzzSplitArray(f *testing.F) {
	for _, seed := range []string{`[1,"a\u00e9",{"b":[2,-0.5e+3]},null,true,false]`, ` [ ] `, `[01]`, `[1,]`,
		`["\x"]`, `[{"a" 1}]`, `[1e]`, `[-]`, "[\"\x01\"]", `[[[[]]]]`, `[1]x`, `{}`, `[tru]`, `["\ud800"]`, ``, `[1`} {
		f.Add([]byte(seed), uint64(1))
	}
	f.Fuzz(func(t *testing.T, body []byte, seed uint64) {
		var want []json.RawMessage
		wantErr := json.Unmarshal(body, &want)
		if string(bytes.Trim(body, " \t\r\n")) == "null" {
			wantErr = errors.New("null is no array") // json.Unmarshal leaves want nil
		}
		blank := len(bytes.Trim(body, " \t\r\n")) == 0
		got, err := SplitArray(body)
		viaReader, rerr := readAll(body, seed, len(body)+1)
		switch {
		case blank:
			require.NoError(t, err)
			require.NoError(t, rerr)
			require.Empty(t, got)
			require.Empty(t, viaReader)
		case wantErr != nil:
			var serr *SyntaxError
			require.ErrorAs(t, err, &serr, "encoding/json rejects %q: %v", body, wantErr)
			require.ErrorAs(t, rerr, &serr, "encoding/json rejects %q: %v", body, wantErr)
		default:
			require.NoError(t, err, "encoding/json accepts %q", body)
			require.NoError(t, rerr, "encoding/json accepts %q", body)
			require.Len(t, got, len(want))
			require.Len(t, viaReader, len(want))
			for i := range want {
				require.Equal(t, string(want[i]), string(got[i]))
				require.Equal(t, string(want[i]), viaReader[i])
			}
		}

		validErr := Validate(body, MaxDepth)
		if want := json.Valid(body) && validUTF8(body); want != (validErr == nil) {
			t.Fatalf("Validate(%q) = %v, json.Valid and UTF-8 say %v", body, validErr, want)
		}
		switch Classify(body, MaxDepth) {
		case NotJSON:
			require.Error(t, validErr)
		case SameBytes:
			var compact bytes.Buffer
			require.NoError(t, json.Compact(&compact, body))
			require.Equal(t, string(body), compact.String(), "SameBytes text is compact")
			fallthrough
		case SameValue:
			requireSameValue(t, body)
		}
	})
}

// requireSameValue checks what a Go reader can: numbers survive a double.
func requireSameValue(t *testing.T, body []byte) {
	var v any
	require.NoError(t, json.Unmarshal(body, &v))
	re, err := json.Marshal(v)
	require.NoError(t, err)
	var again any
	require.NoError(t, json.Unmarshal(re, &again))
	require.Equal(t, v, again)
}

// benchBody is a read body of 10,000 envelopes like the Subscriber reads.
func benchBody() []byte {
	elem := `{"uuid":"0b3e7c4a-4f0e-4a5e-9a7e-2f1f6c9d8e7a","metadata":{"k":"v"},"payload":"` + strings.Repeat("x", 98) + `"}`
	return []byte("[" + strings.Repeat(elem+",", 9999) + elem + "]")
}

func BenchmarkSplitArray(b *testing.B) {
	body := benchBody()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		elems, err := SplitArray(body)
		if err != nil || len(elems) != 10000 {
			b.Fatal(len(elems), err)
		}
	}
}

func BenchmarkArrayReader(b *testing.B) {
	body := benchBody()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		a := NewArrayReader(bytes.NewReader(body), 1<<20)
		n := 0
		for {
			_, err := a.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 10000 {
			b.Fatal(n)
		}
	}
}
