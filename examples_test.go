package durablestreams_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// TestExamples runs the tests of every program in _examples, which the go
// tool leaves out of ./... patterns. One `go test` builds them all at once,
// against this package's shared server.
func TestExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every example in _examples")
	}
	entries, err := os.ReadDir("_examples")
	require.NoError(t, err)
	var pkgs []string
	for _, e := range entries {
		if e.IsDir() {
			pkgs = append(pkgs, "./"+filepath.ToSlash(filepath.Join("_examples", e.Name())))
		}
	}
	require.NotEmpty(t, pkgs)
	server := dstest.Shared(t).URL

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	args := append([]string{"test", "-count=1", "-timeout=3m"}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), dstest.EnvURL+"="+server)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go %s:\n%s", strings.Join(args, " "), out)
	for _, pkg := range pkgs {
		require.Contains(t, string(out), "ok  \tgithub.com/durablestreams/watermill-durablestreams/"+strings.TrimPrefix(pkg, "./"), "%s did not pass:\n%s", pkg, out)
	}
}
