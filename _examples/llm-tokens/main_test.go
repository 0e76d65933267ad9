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

func TestLLMTokensExample(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	server := dstest.Shared(t).URL
	goroutines := runtime.NumGoroutine()
	var out bytes.Buffer
	require.NoError(t, run(ctx, &out, server))
	requireNoLeak(t, goroutines)
	got := out.String()

	partial := strings.Join(strings.SplitAfter(answer, " ")[:tokensBeforeDisconnect], "")
	require.Contains(t, got, `reader: showed 8 tokens, then the connection dropped: "`+partial+`"`, got)
	require.Contains(t, got, "reader: resuming after offset ", got)
	require.Contains(t, got, `reader: stream closed, finish reason "stop"`, got)
	// The whole answer, each token once: the token held unacked when the
	// connection dropped came again, none came twice.
	require.Contains(t, got, "\nanswer: "+answer+"\n", got)
	require.Equal(t, 1, strings.Count(got, "answer: "), got)
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
