package durablestreams_test

import (
	"context"
	"go/ast"
	"os/exec"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/defaults"
	"github.com/durablestreams/watermill-durablestreams/internal/group"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
)

// TestGodocShowsEverything runs `go doc -all` on the root package and fails
// where it shows a user a name from an internal package, which go doc
// cannot show: a type that is an alias of (or defined from) an internal
// type hides every field and method, a constant defined as an internal
// one hides its value, and a field, parameter or result of an internal
// type cannot be looked up. Variables are left out: a sentinel error's
// initializer is not its documentation (its doc comment says what it
// means), and errors.Is compares identity.
func TestGodocShowsEverything(t *testing.T) {
	internal := internalImportNames(t)
	require.NotEmpty(t, internal, "the root package imports no internal package: the check would check nothing")
	ref := regexp.MustCompile(`\b(` + strings.Join(internal, "|") + `)\.[A-Z]\w*`)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "doc", "-all", ".").CombinedOutput()
	require.NoError(t, err, "go doc -all .:\n%s", out)
	doc := string(out)
	require.Contains(t, doc, "type PublisherConfig struct", "unexpected go doc output:\n%s", doc)

	for _, d := range godocDecls(doc) {
		if d.kind == "var" {
			continue
		}
		for _, line := range d.lines {
			found := ref.FindString(line)
			if found == "" {
				continue
			}
			alias := regexp.MustCompile(`^type (\w+) =? ?` + regexp.QuoteMeta(found) + `\b`).FindStringSubmatch(line)
			switch {
			case alias != nil:
				t.Errorf("type %s is %s: go doc shows none of its fields or methods; define it in the root package", alias[1], found)
			case d.kind == "const":
				t.Errorf("go doc shows no value for %q: define the constant as a literal", strings.TrimSpace(line))
			default:
				t.Errorf("go doc shows the internal %s, which a user cannot look up: %q", found, strings.TrimSpace(line))
			}
		}
	}
}

// godocDecl is one top-level declaration in go doc output: its keyword
// and its source lines (not its doc text, which go doc indents by four
// spaces).
type godocDecl struct {
	kind  string
	lines []string
}

func godocDecls(doc string) []godocDecl {
	var decls []godocDecl
	open := false // inside a ( … ) or { … } block
	for _, line := range strings.Split(doc, "\n") {
		switch {
		case open:
			decls[len(decls)-1].lines = append(decls[len(decls)-1].lines, line)
			open = line != ")" && line != "}"
		case strings.HasPrefix(line, "    "), line == "":
			// doc text
		default:
			kind, _, _ := strings.Cut(line, " ")
			decls = append(decls, godocDecl{kind: kind, lines: []string{line}})
			open = strings.HasSuffix(line, "(") || strings.HasSuffix(line, "{")
		}
	}
	return decls
}

// internalImportNames returns the names under which the root package's
// files import packages of internal/.
func internalImportNames(t *testing.T) []string {
	t.Helper()
	names := map[string]bool{}
	for _, f := range rootPackage(t) {
		for _, imp := range f.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			require.NoError(t, err)
			if !strings.Contains(p, "/internal/") {
				continue
			}
			name := path.Base(p)
			if imp.Name != nil {
				name = imp.Name.Name
			}
			names[name] = true
		}
	}
	var list []string
	for name := range names {
		list = append(list, regexp.QuoteMeta(name))
	}
	return list
}

// TestExportedFieldsAreDocumented: every exported field of every exported
// struct type, and every method of every exported interface, has a doc
// comment, so that go doc -all says what each one a user can set or read
// means. A field may share the comment of a field before it that names it
// ("Method and URL of the request"). An embedded field needs none (its
// type's doc and fields say it), nor does the method of a one-method
// interface (the type's doc does).
func TestExportedFieldsAreDocumented(t *testing.T) {
	checked := 0
	for _, f := range rootPackage(t) {
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok || !ts.Name.IsExported() {
				return true
			}
			var fields *ast.FieldList
			switch typ := ts.Type.(type) {
			case *ast.StructType:
				fields = typ.Fields
			case *ast.InterfaceType:
				if typ.Methods.NumFields() == 1 {
					return false // the type's doc is its method's
				}
				fields = typ.Methods
			default:
				return false
			}
			groupDoc := "" // the last doc comment, which may name the fields after it
			for _, field := range fields.List {
				if len(field.Names) == 0 {
					continue // embedded
				}
				if field.Doc != nil {
					groupDoc = field.Doc.Text()
				}
				for _, name := range field.Names {
					if !name.IsExported() {
						continue
					}
					checked++
					// "Method and URL of the request" documents URL too.
					named := regexp.MustCompile(`\b` + name.Name + `\b`).MatchString(groupDoc)
					assert.True(t, field.Doc != nil || field.Comment != nil || named, "%s.%s has no doc comment", ts.Name.Name, name.Name)
				}
			}
			return false
		})
	}
	require.NotZero(t, checked, "no exported field found: the check would check nothing")
}

// TestDefaultsShowTheirValues: each default is written, as a value, in
// the doc of the field it fills ("Default: 5ms."), since the constants
// are not exported; and the root package's defaults are the values the
// internal packages fall back to.
func TestDefaultsShowTheirValues(t *testing.T) {
	rows := []struct {
		field string // Type.Field
		value any
	}{
		{"PublisherConfig.Linger", defaults.Linger},
		{"PublisherConfig.MaxBatchBytes", defaults.MaxBatchBytes},
		{"PublisherConfig.MaxBufferedBytes", defaults.MaxBufferedBytes},
		{"PublisherConfig.CloseTimeout", defaults.CloseTimeout},
		{"PublisherConfig.IdleProducerTimeout", defaults.IdleProducerTimeout},
		{"SubscriberConfig.NackResendDelay", defaults.NackResendDelay},
		{"SubscriberConfig.LiveTimeout", defaults.LiveTimeout},
		{"SubscriberConfig.MaxReadBytes", defaults.MaxReadBytes},
		{"SubscriberConfig.HandoverTimeout", defaults.HandoverTimeout},
		{"SubscriberConfig.SessionTimeout", defaults.SessionTimeout},
		{"SubscriberConfig.HeartbeatInterval", defaults.HeartbeatInterval},
		{"ClientConfig.RequestTimeout", defaults.RequestTimeout},
		{"StreamOffsetStoreConfig.RotateEvery", defaults.RotateEvery},
		{"FramedMarshaler.MaxFrameBytes", defaults.MaxFrameBytes},
		{"LinesMarshaler.MaxFrameBytes", defaults.MaxFrameBytes},
	}
	docs := fieldDocs(t)
	for _, row := range rows {
		doc, ok := docs[row.field]
		if !assert.True(t, ok, "no field %s", row.field) {
			continue
		}
		doc = strings.Join(strings.Fields(doc), " ")
		want := regexp.MustCompile(`Default( \(0\))?: ` + regexp.QuoteMeta(defaultText(row.value)) + `[.;]`)
		assert.Regexp(t, want, doc, "%s does not show its default", row.field)
	}

	assert.Equal(t, reader.DefaultLiveTimeout, time.Duration(defaults.LiveTimeout))
	assert.Equal(t, int64(reader.DefaultMaxBodyBytes), int64(defaults.MaxReadBytes))
	assert.Equal(t, group.DefaultSessionTimeout, time.Duration(defaults.SessionTimeout))
	assert.Equal(t, group.DefaultHeartbeatInterval, time.Duration(defaults.HeartbeatInterval))
}

// defaultText writes a default as the docs do: "5ms", "65s", "1m", "64 MiB", "1000".
func defaultText(v any) string {
	switch v := v.(type) {
	case time.Duration:
		if v%time.Minute == 0 {
			return strconv.Itoa(int(v/time.Minute)) + "m"
		}
		if v%time.Second == 0 {
			return strconv.Itoa(int(v/time.Second)) + "s"
		}
		return v.String()
	case int:
		if v >= 1<<20 && v%(1<<20) == 0 {
			return strconv.Itoa(v>>20) + " MiB"
		}
		return strconv.Itoa(v)
	}
	panic("defaultText: unknown type")
}

// fieldDocs maps "Type.Field" of the root package's structs to the field's
// doc comment.
func fieldDocs(t *testing.T) map[string]string {
	docs := map[string]string{}
	for _, f := range rootPackage(t) {
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return false
			}
			for _, field := range st.Fields.List {
				for _, name := range field.Names {
					docs[ts.Name.Name+"."+name.Name] = field.Doc.Text()
				}
			}
			return false
		})
	}
	return docs
}
