package grpcauth_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADME checks that the README's gRPC snippet is the code of
// ExampleNew, which the compiler checks, so that the two cannot drift.
func TestREADME(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	doc := regexp.MustCompile("(?s)### gRPC\n.*?```go\n(.*?)```").FindSubmatch(readme)
	if doc == nil {
		t.Fatal("README.md has no gRPC section with a go block")
	}
	code := regexp.MustCompile(`(?s)// The README's gRPC snippet starts here.\n(.*?)\t// The README's gRPC snippet ends here.`).FindSubmatch(src)
	if code == nil {
		t.Fatal("example_test.go lost its README markers")
	}
	if got, want := squash(string(doc[1])), squash(string(code[1])); got != want {
		t.Errorf("README gRPC snippet differs from ExampleNew:\nREADME:\n%s\nexample_test.go:\n%s", doc[1], code[1])
	}
}

// squash drops blank lines and each line's indentation.
func squash(s string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
