package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

func TestMain(m *testing.M) { dstest.Main(m) }

func TestBasicExample(t *testing.T) {
	got := dstest.RunExample(t, run)
	require.Equal(t, 3, strings.Count(got, "published "), got)
	require.Equal(t, 3, strings.Count(got, " at offset 0"), got)
	// The stream reads back as plain JSON, metadata and all.
	require.Contains(t, got, `"metadata":{"source":"basic-example"},"payload":{"n":1,"text":"durable"}}`, got)
}
