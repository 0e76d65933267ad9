package reader

import "errors"

var (
	// ErrProtocol: the server's answer breaks the protocol (a missing
	// Stream-Next-Offset, a JSON-mode body that is no array, bad SSE).
	ErrProtocol = errors.New("durablestreams: protocol violation in read response")
	// ErrBodyTooLarge: an SSE event or batch exceeds Config.MaxBodyBytes.
	ErrBodyTooLarge = errors.New("durablestreams: read response too large")
)

// PastTailError is a read from Offset answered with an end (Tail) before
// it, so the stream no longer reaches the offset: it was deleted and
// created again.
type PastTailError struct {
	Offset, Tail string
}

func (e *PastTailError) Error() string {
	return "offset " + e.Offset + " lies past the stream's tail " + e.Tail
}
