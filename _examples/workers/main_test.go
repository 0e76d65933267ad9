package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

func TestMain(m *testing.M) { dstest.Main(m) }

func TestWorkersExample(t *testing.T) {
	got := dstest.RunExample(t, run)
	require.Contains(t, got, "all 30 jobs handled", got)
	// Each job was handled (at least once), by some worker.
	for i := range 30 {
		require.Regexp(t, regexp.MustCompile(`worker-\d handled \{"job":`+strconv.Itoa(i)+`\}`), got)
	}
	require.GreaterOrEqual(t, strings.Count(got, " handled "), 30, got)
}
