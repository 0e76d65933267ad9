package durablestreams_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rootPackage parses the library's own (non-test) files.
func rootPackage(t *testing.T) []*ast.File {
	t.Helper()
	return packageFiles(t, ".", "durablestreams")
}

// packageFiles parses the non-test files of package name in dir.
func packageFiles(t *testing.T, dir, name string) []*ast.File {
	t.Helper()
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi os.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, parser.ParseComments)
	require.NoError(t, err)
	var files []*ast.File
	for _, f := range pkgs[name].Files {
		files = append(files, f)
	}
	require.NotEmpty(t, files)
	return files
}

// configFields returns the exported fields of a struct type, with whether
// each has a doc comment; an embedded struct (ClientConfig) counts as one
// field of its type's name.
func configFields(t *testing.T, files []*ast.File, typeName string) map[string]bool {
	t.Helper()
	for _, f := range files {
		for _, decl := range f.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, spec := range gen.Specs {
				ts, ok := spec.(*ast.TypeSpec)
				if !ok || ts.Name.Name != typeName {
					continue
				}
				fields := map[string]bool{}
				for _, field := range ts.Type.(*ast.StructType).Fields.List {
					names := field.Names
					if embedded, ok := field.Type.(*ast.Ident); ok && len(names) == 0 {
						names = []*ast.Ident{embedded}
					}
					for _, name := range names {
						if name.IsExported() {
							fields[name.Name] = field.Doc != nil
						}
					}
				}
				return fields
			}
		}
	}
	t.Fatalf("type %s not found", typeName)
	return nil
}

// docTable returns the field names in the first column of the table
// under the given heading of a document.
func docTable(t *testing.T, doc, heading string) map[string]bool {
	t.Helper()
	_, after, found := strings.Cut(doc, "\n"+heading+"\n")
	require.True(t, found, "%s has no heading %q", configurationDoc, heading)
	row := regexp.MustCompile("^\\| `(\\w+)` \\|")
	names := map[string]bool{}
	for _, line := range strings.Split(after, "\n")[1:] {
		if strings.HasPrefix(line, "#") {
			break
		}
		if m := row.FindStringSubmatch(line); m != nil {
			names[m[1]] = true
		}
	}
	return names
}

// configurationDoc holds the configuration tables.
const configurationDoc = "docs/configuration.md"

// TestConfigurationTables keeps the configuration tables and the Config
// types in step: every field is documented in both places, and the tables
// name no field that does not exist. The policy ClientConfig.RetryPolicy
// holds is a type of package retry; its table is headed by its qualified
// name.
func TestConfigurationTables(t *testing.T) {
	root, retryPkg := rootPackage(t), packageFiles(t, "retry", "retry")
	raw, err := os.ReadFile(configurationDoc)
	require.NoError(t, err)
	for _, c := range []struct {
		heading, typeName string
		files             []*ast.File
	}{
		{"PublisherConfig", "PublisherConfig", root},
		{"SubscriberConfig", "SubscriberConfig", root},
		{"StreamOffsetStoreConfig", "StreamOffsetStoreConfig", root},
		{"ClientConfig", "ClientConfig", root},
		{"retry.Policy", "Policy", retryPkg},
	} {
		fields := configFields(t, c.files, c.typeName)
		table := docTable(t, string(raw), "## "+c.heading)
		for name, documented := range fields {
			assert.True(t, documented, "%s.%s has no doc comment", c.heading, name)
			assert.True(t, table[name], "the table for %s lacks %s", c.heading, name)
		}
		for name := range table {
			_, ok := fields[name]
			assert.True(t, ok, "the table for %s names %s, which %s does not have", c.heading, name, c.heading)
		}
	}
}

// TestExportedIdentifiersAreDocumented: godoc shows something for every
// exported name of the public API, package retry's included.
func TestExportedIdentifiersAreDocumented(t *testing.T) {
	for _, f := range append(rootPackage(t), packageFiles(t, "retry", "retry")...) {
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Name.IsExported() && d.Doc == nil && (d.Recv == nil || exportedRecv(d.Recv) && !standardMethods[d.Name.Name]) {
					t.Errorf("func %s has no doc comment", d.Name.Name)
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch s := spec.(type) {
					case *ast.TypeSpec:
						if s.Name.IsExported() && d.Doc == nil && s.Doc == nil {
							t.Errorf("type %s has no doc comment", s.Name.Name)
						}
					case *ast.ValueSpec:
						for _, name := range s.Names {
							if name.IsExported() && d.Doc == nil && s.Doc == nil && s.Comment == nil {
								t.Errorf("%s has no doc comment", name.Name)
							}
						}
					}
				}
			}
		}
	}
}

// standardMethods implement well-known interfaces (error, fmt.Stringer,
// errors.Is/As/Unwrap); their meaning needs no comment.
var standardMethods = map[string]bool{"Error": true, "Unwrap": true, "String": true, "Is": true, "As": true}

func exportedRecv(recv *ast.FieldList) bool {
	typ := recv.List[0].Type
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	ident, ok := typ.(*ast.Ident)
	return ok && ident.IsExported()
}

// documents are the README and every page under docs/.
func documents(t *testing.T) map[string]string {
	t.Helper()
	pages, err := filepath.Glob("docs/*.md")
	require.NoError(t, err)
	docs := map[string]string{}
	for _, p := range append([]string{"README.md"}, pages...) {
		raw, err := os.ReadFile(p)
		require.NoError(t, err)
		docs[p] = string(raw)
	}
	return docs
}

// testSources is the text of every Go test file of the repository.
func testSources(t *testing.T) string {
	t.Helper()
	var sources strings.Builder
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && path != ".") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, "_test.go") {
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sources.Write(src)
		}
		return nil
	})
	require.NoError(t, err)
	return sources.String()
}

// TestDocsNameRealTests: every test the README and docs/ name as evidence
// exists.
func TestDocsNameRealTests(t *testing.T) {
	sources := testSources(t)
	named := 0
	for page, text := range documents(t) {
		for _, m := range regexp.MustCompile("`(Test\\w+)`").FindAllStringSubmatch(text, -1) {
			named++
			assert.Contains(t, sources, "func "+m[1]+"(", "%s names %s, which does not exist", page, m[1])
		}
	}
	require.NotZero(t, named)
}

// TestDocsLinksResolve: every relative link of the README and docs/ leads
// to a file of the repository, and every #anchor to a heading of its page.
func TestDocsLinksResolve(t *testing.T) {
	docs := documents(t)
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for page, text := range docs {
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := page
			if file != "" {
				path = filepath.Join(filepath.Dir(page), file)
				_, err := os.Stat(path)
				assert.NoError(t, err, "%s links to %s", page, target)
			}
			if anchor != "" {
				doc, ok := docs[filepath.ToSlash(path)]
				if assert.True(t, ok, "%s links to an anchor of %s, which is no page", page, target) {
					assert.Contains(t, anchors(doc), anchor, "%s links to %s: no such heading", page, target)
				}
			}
		}
	}
}

// anchors are the GitHub anchors of a page's headings.
func anchors(doc string) []string {
	var out []string
	inCode := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var b strings.Builder
		for _, r := range title {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
				b.WriteRune(r)
			}
		}
		out = append(out, b.String())
	}
	return out
}

// TestREADMEIsShortAndListsEveryExample: the README is read to the end (at
// most 300 lines, the details live in docs/), and its examples table has
// every example.
func TestREADMEIsShortAndListsEveryExample(t *testing.T) {
	readme := documents(t)["README.md"]
	assert.LessOrEqual(t, strings.Count(readme, "\n"), 300, "README.md is longer than 300 lines: move details to docs/")
	examples, err := filepath.Glob("_examples/*/main.go")
	require.NoError(t, err)
	require.NotEmpty(t, examples)
	for _, e := range examples {
		name := filepath.Base(filepath.Dir(e))
		assert.Contains(t, readme, "| [`"+name+"`](_examples/"+name+") |", "the README's examples table lacks %s", name)
	}
}
