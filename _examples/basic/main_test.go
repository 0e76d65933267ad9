package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBasicExample(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out))
	require.Equal(t, 3, strings.Count(out.String(), "published "), out.String())
	require.Contains(t, out.String(), `"text":"durable"`)
}
