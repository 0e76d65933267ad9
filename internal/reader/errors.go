package reader

import "errors"

var (
	// ErrProtocol: the server's answer breaks the protocol (a missing
	// Stream-Next-Offset, a JSON-mode body that is no array, bad SSE).
	ErrProtocol = errors.New("durablestreams: protocol violation in read response")
	// ErrBodyTooLarge: a read body or SSE event exceeds Config.MaxBodyBytes.
	ErrBodyTooLarge = errors.New("durablestreams: read response too large")
)
