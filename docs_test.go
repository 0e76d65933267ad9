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
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi os.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, parser.ParseComments)
	require.NoError(t, err)
	var files []*ast.File
	for _, f := range pkgs["durablestreams"].Files {
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

// readmeTable returns the field names in the first column of the table
// under the given README heading.
func readmeTable(t *testing.T, readme, heading string) map[string]bool {
	t.Helper()
	_, after, found := strings.Cut(readme, "\n"+heading+"\n")
	require.True(t, found, "README has no heading %q", heading)
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

// TestREADMEConfigTables keeps the README's configuration tables and the
// Config types in step: every field is documented in both places, and the
// README names no field that does not exist.
func TestREADMEConfigTables(t *testing.T) {
	files := rootPackage(t)
	raw, err := os.ReadFile("README.md")
	require.NoError(t, err)
	for _, typeName := range []string{"PublisherConfig", "SubscriberConfig", "StreamOffsetStoreConfig", "ClientConfig"} {
		fields := configFields(t, files, typeName)
		table := readmeTable(t, string(raw), "### "+typeName)
		for name, documented := range fields {
			assert.True(t, documented, "%s.%s has no doc comment", typeName, name)
			assert.True(t, table[name], "README table for %s lacks %s", typeName, name)
		}
		for name := range table {
			_, ok := fields[name]
			assert.True(t, ok, "README table for %s names %s, which %s does not have", typeName, name, typeName)
		}
	}
}

// TestExportedIdentifiersAreDocumented: godoc shows something for every
// exported name of the public API.
func TestExportedIdentifiersAreDocumented(t *testing.T) {
	for _, f := range rootPackage(t) {
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

// TestREADMEGuaranteesNameRealTests: every test the README names as
// evidence exists.
func TestREADMEGuaranteesNameRealTests(t *testing.T) {
	raw, err := os.ReadFile("README.md")
	require.NoError(t, err)
	named := regexp.MustCompile("`(Test\\w+)`").FindAllStringSubmatch(string(raw), -1)
	require.NotEmpty(t, named)

	var sources strings.Builder
	for _, pattern := range []string{"*_test.go", "systemtest/*_test.go", "internal/*/*_test.go", "_examples/*/*_test.go"} {
		files, err := filepath.Glob(pattern)
		require.NoError(t, err)
		for _, f := range files {
			src, err := os.ReadFile(f)
			require.NoError(t, err)
			sources.Write(src)
		}
	}
	for _, m := range named {
		assert.Contains(t, sources.String(), "func "+m[1]+"(", "README names %s, which does not exist", m[1])
	}
}
