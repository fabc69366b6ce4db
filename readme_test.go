package tasks_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestREADME_SnippetsAreExamples checks that every Go snippet in README.md is
// pasted from the body of a compiled example (a func Example… in a test file
// of the module), line for line but for indentation and blank lines, so that
// the README cannot drift from code that go test compiles and runs.
func TestREADME_SnippetsAreExamples(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var bodies [][]string
	fset := token.NewFileSet()
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Example") || fn.Body == nil {
				continue
			}
			start, end := fset.Position(fn.Body.Lbrace).Offset, fset.Position(fn.Body.Rbrace).Offset
			bodies = append(bodies, codeLines(string(src[start+1:end])))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	snippets := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	if len(snippets) == 0 {
		t.Fatal("README.md has no Go snippet")
	}
	for _, m := range snippets {
		snippet := codeLines(m[1])
		if !containsRun(bodies, snippet) {
			t.Errorf("README.md snippet is in no example's body:\n%s", m[1])
		}
	}
}

// codeLines returns the lines of src without their indentation, leaving out
// blank lines.
func codeLines(src string) []string {
	var out []string
	for line := range strings.SplitSeq(src, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// containsRun reports whether one of bodies holds run as consecutive lines.
func containsRun(bodies [][]string, run []string) bool {
	for _, body := range bodies {
		for i := 0; i+len(run) <= len(body); i++ {
			if slices.Equal(body[i:i+len(run)], run) {
				return true
			}
		}
	}
	return false
}
