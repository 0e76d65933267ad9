package durablestreams_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"

	// The examples' own Watermill packages: importing them here makes go
	// test ./... fetch their modules (the go tool leaves _examples out of
	// ./...), which TestExamplesBuildWhenCopied then finds in the cache.
	_ "github.com/ThreeDotsLabs/watermill/components/cqrs"
	_ "github.com/ThreeDotsLabs/watermill/message/router/middleware"
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

// TestExamplesBuildWhenCopied copies every example's files (its tests
// aside) into an empty module that requires this one, as a user copying an
// example would, and builds them: an example that imports an internal
// package, or needs a file the copy lacks, fails here; the copied basic
// example then runs against the shared server. It needs no network: the
// copy's go.mod requires what this module's does, and its go.sum is this
// one's, so go build (GOPROXY=off) finds every module in the cache that
// building this module's tests filled (tried with an empty GOMODCACHE
// filled by go test alone). go mod tidy would need more: the go.mod files
// of gogo/protobuf's old requirements, which no build downloads.
func TestExamplesBuildWhenCopied(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every example in a module of its own")
	}
	root, err := os.Getwd()
	require.NoError(t, err)
	module := t.TempDir()
	examples := copyExamples(t, module)
	ours, err := os.ReadFile("go.mod")
	require.NoError(t, err)
	const path = "github.com/durablestreams/watermill-durablestreams"
	goMod, found := strings.CutPrefix(string(ours), "module "+path+"\n")
	require.True(t, found, "go.mod does not start with the module line")
	goMod = "module example.com/copied\n" + goMod +
		"\nrequire " + path + " v0.0.0\n\nreplace " + path + " => " + root + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(module, "go.mod"), []byte(goMod), 0o644))
	sums, err := os.ReadFile("go.sum")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(module, "go.sum"), sums, 0o644))

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "bin") + string(filepath.Separator)
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./...")
	build.Dir = module
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build in a module holding copies of %v:\n%s", examples, out)
	for _, name := range examples {
		require.FileExists(t, filepath.Join(bin, name), "go build made no program for %s", name)
	}

	// The copy runs as it is: against the server named by -server, and
	// with a clear message when none is named.
	server := dstest.Shared(t).URL
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "basic"), "-server", server)
	cmd.Env = append(os.Environ(), dstest.EnvURL+"=")
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "basic -server %s:\n%s", server, out)
	require.Len(t, regexp.MustCompile(`(?m)^published `).FindAllString(string(out), -1), 3, "basic -server %s:\n%s", server, out)
	cmd = exec.CommandContext(ctx, filepath.Join(bin, "basic"))
	cmd.Env = append(os.Environ(), dstest.EnvURL+"=")
	out, err = cmd.CombinedOutput()
	require.Error(t, err, "basic without a server:\n%s", out)
	require.Contains(t, string(out), "no server: pass -server http://host:port or set DURABLE_STREAMS_URL")
}

// copyExamples copies each example's files but its tests into a directory
// of the same name under dst, and returns the names.
func copyExamples(t *testing.T, dst string) []string {
	t.Helper()
	entries, err := os.ReadDir("_examples")
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join("_examples", e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.Mkdir(filepath.Join(dst, e.Name()), 0o755))
		for _, f := range files {
			if !f.Type().IsRegular() || strings.HasSuffix(f.Name(), "_test.go") {
				continue
			}
			src, err := os.ReadFile(filepath.Join("_examples", e.Name(), f.Name()))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dst, e.Name(), f.Name()), src, 0o644))
		}
		names = append(names, e.Name())
	}
	require.NotEmpty(t, names)
	return names
}

// TestREADMEQuickStart: the Quick start is two commands; the second is the
// one CI runs (.ci/run), and the first runs the basic example against a
// server it starts itself, as this test does.
func TestREADMEQuickStart(t *testing.T) {
	commands := quickStartCommands(t)
	require.Len(t, commands, 2, "the Quick start should be two commands: %q", commands)
	ci, err := os.ReadFile(".ci/run")
	require.NoError(t, err)
	ciLines := strings.Split(strings.TrimSpace(string(ci)), "\n")
	require.Equal(t, ciLines[len(ciLines)-1], commands[1], ".ci/run must run the README's test command")

	if testing.Short() {
		t.Skip("builds and runs the basic example")
	}
	dstest.SkipIfExternal(t, "starts a reference server of its own")
	_, err = os.Stat(filepath.Join("testserver", "node_modules", "@durable-streams", "server", "package.json"))
	require.NoError(t, err, "the reference server is not installed: run npm ci --prefix testserver")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", commands[0])
	// The launcher installs the server when it is missing; a test must not.
	cmd.Env = append(os.Environ(), "DURABLE_STREAMS_NO_INSTALL=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s:\n%s", commands[0], out)
	require.Len(t, regexp.MustCompile(`(?m)^published `).FindAllString(string(out), -1), 3, "%s:\n%s", commands[0], out)
	require.Contains(t, string(out), "streams live under http://127.0.0.1:", "%s:\n%s", commands[0], out)
	require.Contains(t, string(out), `"payload":{"n":2,"text":"streams"}}]`, "%s:\n%s", commands[0], out)
}

// quickStartCommands returns the command lines of the first code block
// under the README's "## Quick start".
func quickStartCommands(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("README.md")
	require.NoError(t, err)
	_, section, found := strings.Cut(string(raw), "\n## Quick start\n")
	require.True(t, found, "README has no Quick start")
	_, block, found := strings.Cut(section, "```sh\n")
	require.True(t, found, "the Quick start has no sh block")
	block, _, _ = strings.Cut(block, "```")
	var commands []string
	for _, line := range strings.Split(block, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			commands = append(commands, line)
		}
	}
	return commands
}
