package exactlyonce

import "fmt"

// maxOutputIndex bounds the outputs of one input (the width of the index
// in a Stream-Seq).
const maxOutputIndex = 999_999_999

// streamSeq is the Stream-Seq of an input's outputs from index on. Both
// servers compare Stream-Seq byte-wise, per stream (the last one is kept
// with the stream's metadata, whoever wrote it), and answer 409 to one that
// does not rise. Fixed-width decimals make byte order the order of
// (input ordinal, output index), so the outputs of a redelivered input
// are answered "already written".
//
// The ordinal is subscription.Pos.N, not the input's offset and skip: one message
// has many (offset, skip) names (a read may start at any earlier offset),
// and ordering by them could put a later input below an earlier one,
// which a 409 would then drop.
func streamSeq(ordinal, index int64) (string, error) {
	if ordinal < 0 || index < 0 || index > maxOutputIndex {
		return "", fmt.Errorf("%w: input ordinal %d, output index %d out of range (at most %d outputs per input)", ErrNotExactlyOnce, ordinal, index, maxOutputIndex)
	}
	return fmt.Sprintf("%019d.%09d", ordinal, index), nil
}
