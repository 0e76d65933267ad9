package durablestreams_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var fuzzFunc = regexp.MustCompile(`(?m)^func (Fuzz\w+)\(`)

// TestFuzzTargetsBriefly runs every fuzz target of the module for a
// bounded time (DS_FUZZTIME, default 2s each), so the fuzzers run in CI and
// not only their seed corpora. make fuzz runs them longer.
func TestFuzzTargetsBriefly(t *testing.T) {
	if testing.Short() {
		t.Skip("fuzzing is skipped with -short")
	}
	fuzztime := os.Getenv("DS_FUZZTIME")
	if fuzztime == "" {
		fuzztime = "2s"
	}
	targets := map[string][]string{} // package dir -> targets
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), "_") || d.Name() == "node_modules" || d.Name() == "testdata" || (d.Name() != "." && strings.HasPrefix(d.Name(), "."))) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range fuzzFunc.FindAllSubmatch(src, -1) {
			dir := "./" + filepath.Dir(path)
			targets[dir] = append(targets[dir], string(m[1]))
		}
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, targets)

	dirs := make([]string, 0, len(targets))
	for dir := range targets {
		dirs = append(dirs, dir)
	}
	sort.Strings(dirs)
	for _, dir := range dirs {
		for _, target := range targets[dir] {
			t.Run(strings.TrimPrefix(dir, "./")+"/"+target, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
				defer cancel()
				cmd := exec.CommandContext(ctx, "go", "test", "-run=^$", "-fuzz=^"+target+"$", "-fuzztime="+fuzztime, "-parallel=1", dir)
				out, err := cmd.CombinedOutput()
				require.NoError(t, err, "%s", out)
			})
		}
	}
}
