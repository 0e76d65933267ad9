package exactlyonce

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestStreamSeqOrdersByInputThenOutput(t *testing.T) {
	seqs := [][2]int64{{0, 0}, {0, 1}, {0, 10}, {9, 0}, {10, 0}, {10, 999_999_999}, {1 << 40, 0}}
	prev := ""
	for _, s := range seqs {
		got, err := streamSeq(s[0], s[1])
		assert.NoError(t, err)
		assert.Greater(t, got, prev, "byte order must be input order, then output order")
		prev = got
	}
	_, err := streamSeq(1, maxOutputIndex+1)
	assert.ErrorIs(t, err, ErrNotExactlyOnce)
}
