package main

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

func TestMain(m *testing.M) { dstest.Main(m) }

// TestCQRSExample: three replicas share the commands by room: each replica
// handles some, no command is handled twice (the example checks every
// command's count), and the read model holds every booking.
func TestCQRSExample(t *testing.T) {
	got := dstest.RunExample(t, run)

	sent := regexp.MustCompile(`sent (\d+) BookRoom commands`).FindStringSubmatch(got)
	require.NotNil(t, sent, got)
	per := regexp.MustCompile(`replica-\d handled (\d+) commands`).FindAllStringSubmatch(got, -1)
	require.Len(t, per, 3, "every replica handled commands:\n%s", got)
	total := 0
	for _, m := range per {
		n, _ := strconv.Atoi(m[1])
		total += n
	}
	require.Equal(t, sent[1], strconv.Itoa(total), "each command handled once:\n%s", got)
	require.Contains(t, got, "every command handled once; bookings in the report: "+sent[1], got)
}
