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

// defaultFuzzTime is a count of executions, not a duration: Go 1.26's fuzz
// coordinator can fail a run that ends on a -fuzztime deadline with a bare
// "context deadline exceeded" when its workers are starved of CPU
// (golang/go#75804, fixed in Go 1.27). A count has no deadline to race.
// 10,000 executions take 1-3 s per target on a 2-core machine.
const defaultFuzzTime = "10000x"

// TestFuzzTargetsBriefly runs every fuzz target of the module for
// DS_FUZZTIME each (default defaultFuzzTime), so the fuzzers run in CI and
// not only their seed corpora. make fuzz runs them longer.
//
// A duration in DS_FUZZTIME (make fuzz) can meet golang/go#75804. Such a
// failure writes no reproducer, which a finding always does; it is logged
// and not counted as a failure.
func TestFuzzTargetsBriefly(t *testing.T) {
	if testing.Short() {
		t.Skip("fuzzing is skipped with -short")
	}
	fuzztime := os.Getenv("DS_FUZZTIME")
	if fuzztime == "" {
		fuzztime = defaultFuzzTime
	}
	byCount := strings.HasSuffix(fuzztime, "x")
	targets := fuzzTargets(t)
	dirs := make([]string, 0, len(targets))
	for dir := range targets {
		dirs = append(dirs, dir)
	}
	sort.Strings(dirs)
	for _, dir := range dirs {
		for _, target := range targets[dir] {
			t.Run(strings.TrimPrefix(dir, "./")+"/"+target, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
				defer cancel()
				cmd := exec.CommandContext(ctx, "go", "test", "-run=^$", "-fuzz=^"+target+"$", "-fuzztime="+fuzztime, "-parallel=1", dir)
				out, err := cmd.CombinedOutput()
				if err != nil && !byCount && isCoordinatorDeadlineFlake(string(out)) {
					t.Logf("%s: Go's fuzz coordinator failed at the -fuzztime deadline without a finding (golang/go#75804); not a defect:\n%s", target, out)
					return
				}
				require.NoError(t, err, "%s", out)
			})
		}
	}
}

// isCoordinatorDeadlineFlake tells golang/go#75804 from a finding: a
// finding always writes its input to testdata/fuzz before failing.
func isCoordinatorDeadlineFlake(out string) bool {
	return strings.Contains(out, "context deadline exceeded") &&
		!strings.Contains(out, "Failing input written to") &&
		!strings.Contains(out, "panic:")
}

func TestIsCoordinatorDeadlineFlake(t *testing.T) {
	flake := "fuzz: elapsed: 3s, execs: 40304 (0/sec)\n--- FAIL: FuzzX (3.20s)\n    context deadline exceeded\nFAIL\n"
	finding := "--- FAIL: FuzzX (0.31s)\n    --- FAIL: FuzzX (0.00s)\n        x_test.go:12: context deadline exceeded\n" +
		"    Failing input written to testdata/fuzz/FuzzX/abc\n"
	require.True(t, isCoordinatorDeadlineFlake(flake))
	require.False(t, isCoordinatorDeadlineFlake(finding))
	require.False(t, isCoordinatorDeadlineFlake("--- FAIL: FuzzX\npanic: boom\n"))
}

// fuzzTargets finds every fuzz target of the module, by package dir.
func fuzzTargets(t *testing.T) map[string][]string {
	targets := map[string][]string{}
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && skipDir(path) {
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
	return targets
}

// skipDir leaves out what ./... leaves out, and nested modules.
func skipDir(path string) bool {
	name := filepath.Base(path)
	if strings.HasPrefix(name, "_") || strings.HasPrefix(name, ".") || name == "node_modules" || name == "testdata" {
		return true
	}
	_, err := os.Stat(filepath.Join(path, "go.mod"))
	return err == nil
}
