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

func TestCQRSExample(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	server := dstest.Shared(t).URL
	goroutines := runtime.NumGoroutine()
	var out bytes.Buffer
	require.NoError(t, run(ctx, &out, server))
	requireNoLeak(t, goroutines)
	got := out.String()

	require.Equal(t, 3, strings.Count(got, "sent BookRoom for room "), got)
	// The event processor saw the "name" metadata after the round trip.
	require.Equal(t, 3, strings.Count(got, "handling RoomBooked read from events.RoomBooked\n"), got)
	require.Contains(t, got, "bookings report:\n"+
		"  room 101: Ada, 3 night(s) (booking-101-Ada)\n"+
		"  room 102: Grace, 1 night(s) (booking-102-Grace)\n"+
		"  room 103: Linus, 2 night(s) (booking-103-Linus)\n", got)
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
