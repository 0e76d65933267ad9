//go:build browser

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// chromiumPath finds a Chromium to run headless: $CHROMIUM, or one on PATH.
func chromiumPath(t *testing.T) string {
	if path := os.Getenv("CHROMIUM"); path != "" {
		return path
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Skip("no headless browser: install Chromium (Debian: apt-get install -y chromium) or set CHROMIUM=/path/to/chrome")
	return ""
}

var listItem = regexp.MustCompile(`<li class="(live|catch-up)">([^<]*)</li>`)

// TestBrowserShowsEventsLive opens the page in headless Chromium and checks
// that every published event appears on it, most of them live, and that
// the page saw the stream close.
func TestBrowserShowsEventsLive(t *testing.T) {
	chromium := chromiumPath(t)
	const events = 8
	demo := startDemo(t, demo{events: events, interval: 150 * time.Millisecond})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// --dump-dom prints the page once it is idle: once the stream closed
	// and the page closed its EventSource, so no request is pending.
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking",
		"--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=15000",
		"--dump-dom", demo.pageURL)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	dom, err := cmd.Output()
	require.NoError(t, err, "chromium: %s", stderr.String())
	page := string(dom)

	require.Contains(t, page, `<span id="status">stream closed</span>`, page)
	var want, got []string
	live := 0
	for n := 1; n <= events; n++ {
		want = append(want, fmt.Sprintf("event %d of %d", n, events))
	}
	want = append(want, "that was the last event")
	for _, m := range listItem.FindAllStringSubmatch(page, -1) {
		got = append(got, m[2])
		if m[1] == "live" {
			live++
		}
	}
	require.Equal(t, want, got, page)
	// Publishing starts when the page is requested, the page subscribes a
	// moment later: the first events may come in its catch-up read, the
	// later ones must come live.
	require.GreaterOrEqual(t, live, events/2, page)

	demo.stop(t)
	require.Contains(t, demo.out.String(), fmt.Sprintf("published event %d at offset ", events))
}
