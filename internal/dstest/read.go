package dstest

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// ReadJSON reads every message of a JSON-mode stream from its start,
// following Stream-Next-Offset until the server says it is up to date
// (a server may answer a catch-up read in chunks). The requests are
// bound to the test's context.
func ReadJSON(tb testing.TB, streamURL string) []json.RawMessage {
	tb.Helper()
	var all []json.RawMessage
	offset := "-1"
	for range 10_000 {
		req, err := http.NewRequestWithContext(tb.Context(), http.MethodGet, streamURL+"?offset="+offset, nil)
		if err != nil {
			tb.Fatalf("read %s: %v", streamURL, err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			tb.Fatalf("read %s: %v", streamURL, err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			tb.Fatalf("GET %s: %v %d %s", streamURL, err, resp.StatusCode, body)
		}
		var batch []json.RawMessage
		if err := json.Unmarshal(body, &batch); err != nil {
			tb.Fatalf("GET %s: %v: %q", streamURL, err, body)
		}
		all = append(all, batch...)
		offset = resp.Header.Get("Stream-Next-Offset")
		if resp.Header.Get("Stream-Up-To-Date") == "true" {
			return all
		}
	}
	tb.Fatalf("stream %s never became up to date", streamURL)
	return nil
}
