package reader

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// parseSSE parses a whole event stream; it is readSSEEvent over a byte
// slice, for tests and fuzzing.
func parseSSE(data []byte, max int) ([]sseEvent, error) {
	br := bufio.NewReader(bytes.NewReader(data))
	var events []sseEvent
	for {
		ev, err := readSSEEvent(br, max)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return events, nil
		}
		if err != nil {
			return events, err
		}
		events = append(events, ev)
	}
}
