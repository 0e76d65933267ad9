package durablestreams

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/cloudevents"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// TestCloudEventsParserAcceptsOutput: the npm package cloudevents (an
// independent implementation, pinned in testserver/package-lock.json)
// parses and validates every event CloudEventsMarshaler writes, after a
// round trip through the server, and sees the same id, type, source,
// extensions and data.
func TestCloudEventsParserAcceptsOutput(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not on PATH")
	}
	if _, err := os.Stat(filepath.Join(dstest.Dir(), "node_modules", "cloudevents", "package.json")); err != nil {
		t.Fatalf("the npm package cloudevents is not installed: run npm ci --prefix %s", dstest.Dir())
	}
	m := CloudEventsMarshaler{Source: "/orders"}
	msgs := ceMessages()
	url := dstest.StreamURL(t)
	serverDo(t, http.MethodPut, url, m.ContentType(), nil)
	body := []byte{'['}
	for i, tc := range msgs {
		data, err := m.Marshal("t", tc.msg)
		require.NoError(t, err)
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, data...)
	}
	// Last, one event the parser must reject: the test can fail.
	body = append(body, `,{"specversion":"1.0","id":"1","source":"s","type":"t","correlation_id":"c"}]`...)
	serverDo(t, http.MethodPost, url, m.ContentType(), body)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dstest.Dir(), "ce-parse.mjs"), "--url", url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s", stderr.String())

	lines := bufio.NewScanner(bytes.NewReader(out))
	lines.Buffer(nil, 64<<20)
	n := 0
	for ; n < len(msgs) && lines.Scan(); n++ {
		tc := msgs[n]
		var ev struct {
			Error      string
			Errors     any
			ID, Type   string
			Source     string
			Data       json.RawMessage
			DataBase64 *string `json:"data_base64"`
			Ext        map[string]any
		}
		require.NoError(t, json.Unmarshal(lines.Bytes(), &ev))
		require.Empty(t, ev.Error, "%s: %v", tc.name, ev.Errors)
		assert.Equal(t, tc.msg.UUID, ev.ID, tc.name)
		assert.Equal(t, tc.msg.Metadata.Get("name"), ev.Type, tc.name)
		wantSource := tc.msg.Metadata.Get(cloudevents.KeySource)
		if wantSource == "" {
			wantSource = m.Source
		}
		assert.Equal(t, wantSource, ev.Source, tc.name)
		for k, v := range tc.msg.Metadata {
			if k != "name" && !cloudevents.IsAttributeKey(k) {
				assert.Equal(t, v, ev.Ext[cloudevents.AttributeName(k)], "%s: metadata %q", tc.name, k)
			}
		}
		kind, _ := m.codec().PayloadForm(tc.msg.Payload)
		if ct, ok := tc.msg.Metadata[cloudevents.KeyDataContentType]; ok && (kind == cloudevents.DataJSON) != cloudevents.IsJSONContentType(ct) {
			kind = cloudevents.DataBase64
		}
		switch kind {
		case cloudevents.DataBase64:
			require.NotNil(t, ev.DataBase64, tc.name)
			assert.Equal(t, base64.StdEncoding.EncodeToString(tc.msg.Payload), *ev.DataBase64, tc.name)
		case cloudevents.DataText:
			if len(tc.msg.Payload) == 0 && ev.Data == nil {
				break // the parser leaves out empty data
			}
			var s string
			require.NoError(t, json.Unmarshal(ev.Data, &s), "%s: %s", tc.name, ev.Data)
			assert.Equal(t, string(tc.msg.Payload), s, tc.name)
		default:
			if ev.Data == nil {
				ev.Data = []byte("null") // the parser leaves out null data
			}
			requireSameJSONValue(t, tc.msg.Payload, ev.Data)
		}
	}
	require.Equal(t, len(msgs), n)
	require.True(t, lines.Scan(), "no line for the invalid event")
	assert.Contains(t, lines.Text(), "invalid extension name")
	require.False(t, lines.Scan())
	require.NoError(t, lines.Err())
}
