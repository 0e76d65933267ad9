package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

func TestMain(m *testing.M) { dstest.Main(m) }

func TestRouterExample(t *testing.T) {
	got := dstest.RunExample(t, run)

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
