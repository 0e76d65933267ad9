package reader

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// maxOffsetLen bounds an offset the server hands us; we send it back in a
// query string, so a hostile server must not make it arbitrarily long.
const maxOffsetLen = 1024

// readHeaders is what a read response says about the stream position.
type readHeaders struct {
	NextOffset string
	Cursor     string
	UpToDate   bool
	Closed     bool
}

// parseReadHeaders reads the position headers of a 200 or 204 read
// response. Stream-Next-Offset is required: without it there is no offset
// to resume from, and the reader never makes one up.
func parseReadHeaders(h http.Header) (readHeaders, error) {
	next := h.Get(protocol.HeaderNextOffset)
	if err := validateOffset(next); err != nil {
		return readHeaders{}, fmt.Errorf("%s header: %w", protocol.HeaderNextOffset, err)
	}
	cursor := h.Get(protocol.HeaderCursor)
	if err := validateToken(cursor); err != nil {
		return readHeaders{}, fmt.Errorf("%s header: %w", protocol.HeaderCursor, err)
	}
	return readHeaders{
		NextOffset: next,
		Cursor:     cursor,
		UpToDate:   headerTrue(h.Get(protocol.HeaderUpToDate)),
		Closed:     headerTrue(h.Get(protocol.HeaderClosed)),
	}, nil
}

func headerTrue(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "true") }

// validateOffset accepts what can be sent back verbatim as offset=...
func validateOffset(offset string) error {
	if offset == "" {
		return fmt.Errorf("%w: missing offset", ErrProtocol)
	}
	return validateToken(offset)
}

func validateToken(v string) error {
	if len(v) > maxOffsetLen {
		return fmt.Errorf("%w: value of %d bytes is longer than %d", ErrProtocol, len(v), maxOffsetLen)
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] >= 0x7f {
			return fmt.Errorf("%w: value has a non-printable or non-ASCII byte at %d", ErrProtocol, i)
		}
	}
	return nil
}

// joinJSONArrays merges JSON arrays (the data events of one SSE batch)
// into one array, as a catch-up GET over the same range would return.
func joinJSONArrays(parts [][]byte) ([]byte, error) {
	out := []byte{'['}
	for _, p := range parts {
		p = bytes.TrimSpace(p)
		if len(p) < 2 || p[0] != '[' || p[len(p)-1] != ']' {
			return nil, fmt.Errorf("%w: SSE data event in a JSON stream is not a JSON array", ErrProtocol)
		}
		inner := bytes.TrimSpace(p[1 : len(p)-1])
		if len(inner) == 0 {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, inner...)
	}
	return append(out, ']'), nil
}

// sseEvent is one server-sent event: its type and its data lines joined
// by "\n".
type sseEvent struct {
	Type string
	Data []byte
}

// sseControl is the JSON of an `event: control`.
type sseControl struct {
	StreamNextOffset string `json:"streamNextOffset"`
	StreamCursor     string `json:"streamCursor"`
	UpToDate         bool   `json:"upToDate"`
	StreamClosed     bool   `json:"streamClosed"`
}

func parseControl(data []byte) (sseControl, error) {
	var c sseControl
	if err := json.Unmarshal(data, &c); err != nil {
		return sseControl{}, fmt.Errorf("%w: SSE control event: %v", ErrProtocol, err)
	}
	if err := validateOffset(c.StreamNextOffset); err != nil {
		return sseControl{}, fmt.Errorf("SSE control streamNextOffset: %w", err)
	}
	if err := validateToken(c.StreamCursor); err != nil {
		return sseControl{}, fmt.Errorf("SSE control streamCursor: %w", err)
	}
	return c, nil
}

// decodeSSEData undoes the transport encoding of a data event.
func decodeSSEData(data []byte, base64Encoded bool) ([]byte, error) {
	if !base64Encoded {
		return data, nil
	}
	compact := bytes.ReplaceAll(data, []byte{'\n'}, nil)
	out := make([]byte, base64.StdEncoding.DecodedLen(len(compact)))
	n, err := base64.StdEncoding.Decode(out, compact)
	if err != nil {
		return nil, fmt.Errorf("%w: SSE data event is not valid base64: %v", ErrProtocol, err)
	}
	return out[:n], nil
}

// readSSEEvent reads the next event from an event stream. Lines end in
// "\n" or "\r\n" (the reference server writes "\n"; a lone "\r" is kept as
// data). Comments, ids and retry fields are ignored; a blank line ends an
// event; events without data or type are skipped. max bounds the bytes of
// one event, so a hostile server cannot make us buffer without limit.
func readSSEEvent(br *bufio.Reader, max int) (sseEvent, error) {
	var (
		ev      sseEvent
		hasData bool
		size    int
	)
	for {
		line, err := readLine(br, max-size)
		if err != nil {
			if errors.Is(err, io.EOF) && len(line) == 0 {
				return sseEvent{}, io.ErrUnexpectedEOF
			}
			if !errors.Is(err, io.EOF) {
				return sseEvent{}, err
			}
		}
		size += len(line)
		if len(line) == 0 {
			if hasData || ev.Type != "" {
				return ev, nil
			}
			continue
		}
		field, value, _ := bytes.Cut(line, []byte{':'})
		value = bytes.TrimPrefix(value, []byte{' '})
		switch string(field) {
		case "event":
			ev.Type = string(value)
		case "data":
			if hasData {
				ev.Data = append(ev.Data, '\n')
			}
			ev.Data = append(ev.Data, value...)
			hasData = true
		}
		if err != nil { // io.EOF after a last unterminated line
			return sseEvent{}, io.ErrUnexpectedEOF
		}
	}
}

// readLine returns one line without its terminator, failing with
// ErrBodyTooLarge past max bytes.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(line)+len(frag) > max+2 {
			return nil, fmt.Errorf("%w: SSE event longer than %d bytes", ErrBodyTooLarge, max)
		}
		line = append(line, frag...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		line = bytes.TrimSuffix(line, []byte{'\n'})
		line = bytes.TrimSuffix(line, []byte{'\r'})
		return line, err
	}
}
