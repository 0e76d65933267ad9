package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

func TestMain(m *testing.M) { dstest.Main(m) }

func TestCQRSExample(t *testing.T) {
	got := dstest.RunExample(t, run)

	require.Equal(t, 3, strings.Count(got, "sent BookRoom for room "), got)
	// The event processor saw the "name" metadata after the round trip.
	require.Equal(t, 3, strings.Count(got, "handling RoomBooked read from events.RoomBooked\n"), got)
	require.Contains(t, got, "bookings report:\n"+
		"  room 101: Ada, 3 night(s) (booking-101-Ada)\n"+
		"  room 102: Grace, 1 night(s) (booking-102-Grace)\n"+
		"  room 103: Linus, 2 night(s) (booking-103-Linus)\n", got)
}
