package jsonscan

import "testing"

var benchPayload = []byte(`{"id":12345,"name":"order placed","items":["a","b","c"],"total":99.5,"ok":true,"note":"xxxxxxx"}`)

func BenchmarkClassify(b *testing.B) {
	b.SetBytes(int64(len(benchPayload)))
	for b.Loop() {
		if Classify(benchPayload, 512) != SameBytes {
			b.Fatal("not SameBytes")
		}
	}
}

func BenchmarkCursorValue(b *testing.B) {
	b.SetBytes(int64(len(benchPayload)))
	var c Cursor
	for b.Loop() {
		c.Reset(benchPayload, MaxDepth)
		if _, err := c.Value(); err != nil {
			b.Fatal(err)
		}
	}
}
