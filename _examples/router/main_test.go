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

func TestRouterExample(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	server := dstest.Shared(t).URL
	goroutines := runtime.NumGoroutine()
	var out bytes.Buffer
	require.NoError(t, run(ctx, &out, server))
	requireNoLeak(t, goroutines)
	got := out.String()

	require.Equal(t, 3, strings.Count(got, "published order-"), got)
	// Both valid orders were confirmed, the one that panicked once too;
	// their outputs were acknowledged by the server before the inputs
	// were acked, and carry the input's correlation id.
	for _, id := range []string{"order-1", "order-2"} {
		require.Contains(t, got, "durable: orders-confirmed message for checkout-"+id+" at offset ", got)
		require.Contains(t, got, `orders-confirmed: {"order_id":"`+id+`","status":"confirmed"} (correlation id checkout-`+id+`)`, got)
	}
	// The invalid order went to the poison queue after its retries, with
	// the reason, instead of blocking the stream.
	require.Contains(t, got, "durable: orders-poison message for checkout-order-3 at offset ", got)
	require.Contains(t, got, `orders-poison: {"id":"order-3","item":"mouse","quantity":0} (correlation id checkout-order-3), reason: order order-3: quantity must be positive`, got)
	require.Equal(t, 1, strings.Count(got, "orders-poison: "), got)
	require.Equal(t, 2, strings.Count(got, "orders-confirmed: "), got)
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
