package subscription

import (
	"errors"
	"testing"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// TestModeMismatch: only a stream whose mode differs from the configured
// content type's is refused, and the error names both.
func TestModeMismatch(t *testing.T) {
	if err := ModeMismatch("t", true, "application/json", "application/json"); err != nil {
		t.Fatalf("same mode: %v", err)
	}
	err := ModeMismatch("t", true, "", "text/plain")
	if !errors.Is(err, protocol.ErrContentTypeMismatch) {
		t.Fatalf("JSON stream, byte-mode reader: %v", err)
	}
	want := `stream content type mismatch: stream "t" is "JSON mode", but the subscriber reads "text/plain" (set Unmarshaler or ContentType to match the stream)`
	if err.Error() != want {
		t.Fatalf("got %q\nwant %q", err, want)
	}
}
