package main

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

func TestMain(m *testing.M) { dstest.Main(m) }

func TestBasicExample(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	server := dstest.Shared(t).URL
	goroutines := runtime.NumGoroutine()
	var out bytes.Buffer
	require.NoError(t, run(ctx, &out, server))
	requireNoLeak(t, goroutines)
	got := out.String()
	require.Equal(t, 3, strings.Count(got, "published "), got)
	require.Equal(t, 3, strings.Count(got, " at offset 0"), got)
	// The stream reads back as plain JSON, metadata and all.
	require.Contains(t, got, `"metadata":{"source":"basic-example"},"payload":{"n":1,"text":"durable"}}`, got)
}

// requireNoLeak fails unless the goroutines are back to n: run joins all
// it started and closes the connections it opened.
func requireNoLeak(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before, %d after:\n%s", n, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
