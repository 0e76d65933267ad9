package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

func TestMain(m *testing.M) { dstest.Main(m) }

func TestLLMTokensExample(t *testing.T) {
	got := dstest.RunExample(t, run)

	partial := strings.Join(strings.SplitAfter(answer, " ")[:tokensBeforeDisconnect], "")
	require.Contains(t, got, `reader: showed 8 tokens, then the connection dropped: "`+partial+`"`, got)
	require.Contains(t, got, "reader: resuming after offset ", got)
	require.Contains(t, got, `reader: stream closed, finish reason "stop"`, got)
	// The whole answer, each token once: the token held unacked when the
	// connection dropped came again, none came twice.
	require.Contains(t, got, "\nanswer: "+answer+"\n", got)
	require.Equal(t, 1, strings.Count(got, "answer: "), got)
}
