package envelope

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The root package's marshaler tests cover the formats through the public
// API; these cover what the root relies on from this package.

func TestUvarintLenMatchesAppendUvarint(t *testing.T) {
	for _, n := range []int{0, 1, 0x7F, 0x80, 0x3FFF, 0x4000, 1 << 20, math.MaxInt32, math.MaxInt} {
		assert.Equal(t, len(binary.AppendUvarint(nil, uint64(n))), uvarintLen(n), "%d", n)
	}
}

func TestErrorsSayWhereWhyAndWhetherTooLarge(t *testing.T) {
	_, err := EncodeFrame(message.NewMessage("u", make([]byte, 64)), 64)
	require.ErrorIs(t, err, ErrTooLarge)

	_, _, err = SplitFrame(append(FrameMagic[:], 0xFF, 0xFF, 0xFF, 0xFF), false, 64)
	require.ErrorIs(t, err, ErrTooLarge)
	var eerr *Error
	require.ErrorAs(t, err, &eerr)
	assert.Equal(t, 4, eerr.Offset, "the length field")

	_, err = DecodeFrame([]byte("hello\n"), 64)
	require.ErrorAs(t, err, &eerr)
	assert.False(t, errors.Is(err, ErrTooLarge))
	assert.Equal(t, Error{Offset: 0, Reason: "not a frame (bad magic)"}, *eerr)

	_, err = DecodeJSON([]byte(`{"uuid":1}`))
	require.ErrorAs(t, err, &eerr)
	assert.Equal(t, Error{Offset: 8, Reason: `"uuid" is not a string`}, *eerr)

	msg := message.NewMessage("u", nil)
	msg.Metadata.Set("k\xff", "v")
	_, err = EncodeJSON(msg, false)
	require.ErrorAs(t, err, &eerr)
	assert.Equal(t, InvalidUTF8(msg), eerr.Reason)
	assert.Equal(t, "at byte 0: "+eerr.Reason, err.Error())
}
