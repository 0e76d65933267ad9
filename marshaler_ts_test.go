package durablestreams

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
)

// TestTypeScriptClientReadsPayloadWithOneCodePath: a JavaScript reader
// using the pinned @durable-streams/client finds every JSON payload that
// JSONMarshaler writes under "payload", as the same value, whatever the
// payload's bytes (Go's escapes of <, > and &, whitespace, exponents).
func TestTypeScriptClientReadsPayloadWithOneCodePath(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not on PATH")
	}
	event, err := json.Marshal(map[string]any{"name": "OrderPlaced", "text": "Fish & chips <3", "html": "<b>x</b>", "qty": 3, "price": 12.5})
	require.NoError(t, err)
	indented, err := json.MarshalIndent(map[string]any{"a": []any{1, "&"}}, "", "  ")
	require.NoError(t, err)
	payloads := [][]byte{
		event, indented, append(event, '\n'), []byte(`{"n":1E5,"f":1.50,"s":"\u00e9\/"}`), []byte(`"<&>"`),
		[]byte(`[0.1,-2,true,null,{}]`), []byte(`{"0":"a","1":"b","x":{"2":[]}}`), []byte(`12`),
		// Not JSON, or JSON JavaScript would change: not under "payload".
		[]byte(`plain text`), []byte{0xff, 0}, []byte(`{"n":12345678901234567890}`), []byte(`{"a":1,"a":2}`), []byte(`{"b":1,"0":2}`), nil,
	}
	url := dstest.StreamURL(t)
	serverDo(t, http.MethodPut, url, "application/json", nil)
	body := []byte{'['}
	for i, p := range payloads {
		data, err := JSONMarshaler{}.Marshal("t", message.NewMessage(strconv.Itoa(i), p))
		require.NoError(t, err)
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, data...)
	}
	serverDo(t, http.MethodPost, url, "application/json", append(body, ']'))

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dstest.Dir(), "ts-read-payloads.mjs"), "--url", url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s", stderr.String())

	lines := bufio.NewScanner(bytes.NewReader(out))
	n := 0
	for ; lines.Scan(); n++ {
		var got struct {
			UUID    string
			Payload json.RawMessage
		}
		require.NoError(t, json.Unmarshal(lines.Bytes(), &got))
		require.Equal(t, strconv.Itoa(n), got.UUID)
		p := payloads[n]
		switch jsonscan.Classify(p, jsonscan.MaxWriteDepth) {
		case jsonscan.SameBytes, jsonscan.SameValue:
			require.NotNil(t, got.Payload, "payload %s is not under \"payload\"", p)
			requireSameJSONValue(t, p, got.Payload)
		default:
			assert.Nil(t, got.Payload, "payload %q", p)
		}
	}
	require.NoError(t, lines.Err())
	require.Equal(t, len(payloads), n)
}
