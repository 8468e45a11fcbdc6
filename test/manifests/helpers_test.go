package manifests

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/rapport-dev/rapport/test/utils"
)

// root is the repository's root folder.
var root = utils.RepoRoot()

// repoPath joins a slash-separated path under the repository root.
func repoPath(rel string) string { return filepath.Join(root, filepath.FromSlash(rel)) }

// readRepoFile reads a file of the repository or fails the test.
func readRepoFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(repoPath(rel))
	if err != nil {
		t.Fatalf("read %s: %v", rel, err)
	}
	return b
}

// missingDependency fails the test in CI and skips it elsewhere: a tool or
// control plane that cannot be had must not go unnoticed in CI, but should
// not stop a developer who runs the other tests.
func missingDependency(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if utils.InCI() {
		t.Fatalf("%s (CI=true: failing instead of skipping)", msg)
	}
	t.Skipf("skipped: %s", msg)
}

// makefileVar returns the default of a `NAME ?= value` line of the Makefile.
func makefileVar(name string) (string, error) {
	b, err := os.ReadFile(repoPath("Makefile"))
	if err != nil {
		return "", err
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s*\?=\s*(\S+)\s*$`)
	m := re.FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("the Makefile has no %s ?= line", name)
	}
	return string(m[1]), nil
}

// tool is a pinned binary of the Makefile, installed into ./bin by a make target.
type tool struct {
	env        string // environment variable that overrides the path
	name       string // binary name in ./bin, without the version
	versionVar string // Makefile variable holding the version
	target     string // make target that installs it

	once sync.Once
	path string
	err  error
}

var (
	helmTool          = &tool{env: "HELM", name: "helm", versionVar: "HELM_VERSION", target: "helm"}
	kustomizeTool     = &tool{env: "KUSTOMIZE", name: "kustomize", versionVar: "KUSTOMIZE_VERSION", target: "kustomize"}
	controllerGenTool = &tool{env: "CONTROLLER_GEN", name: "controller-gen", versionVar: "CONTROLLER_GEN_VERSION", target: "controller-gen"}
)

// find returns the tool's path ($ENV, else $LOCALBIN or ./bin), running
// `make <target>` once when it is not installed; on failure the test fails
// in CI and is skipped elsewhere.
func (tl *tool) find(t testing.TB) string {
	t.Helper()
	tl.once.Do(func() { tl.path, tl.err = tl.locate() })
	if tl.err != nil {
		missingDependency(t, "%s is not available: %v", tl.name, tl.err)
	}
	return tl.path
}

func (tl *tool) locate() (string, error) {
	if p := os.Getenv(tl.env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("$%s=%s: %w", tl.env, p, err)
		}
		return p, nil
	}
	version, err := makefileVar(tl.versionVar)
	if err != nil {
		return "", err
	}
	// Like the Makefile, honour LOCALBIN (default ./bin).
	binDir := os.Getenv("LOCALBIN")
	if binDir == "" {
		binDir = repoPath("bin")
	}
	path := filepath.Join(binDir, tl.name+"-"+version)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	// `go install` of helm takes ~1.5 min with a warm module cache, several
	// minutes cold on 2 cores.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "-C", root, tl.target, "LOCALBIN="+binDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("`make -C %s %s LOCALBIN=%s` failed: %v\n%s", root, tl.target, binDir, err, lastLines(out, 20))
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("`make %s` succeeded but %s is missing", tl.target, path)
	}
	return path, nil
}

// run runs a tool in the repository root and returns its stdout; stderr is
// part of the error.
func run(t testing.TB, name string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// decodeDocs splits a multi-document YAML stream into objects, dropping
// empty documents (comments only).
func decodeDocs(t testing.TB, data []byte) []*unstructured.Unstructured {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("split YAML documents: %v", err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("decode YAML document: %v\n%s", err, doc)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// decodeOne decodes a file that holds exactly one object.
func decodeOne(t testing.TB, rel string) *unstructured.Unstructured {
	t.Helper()
	objs := decodeDocs(t, readRepoFile(t, rel))
	if len(objs) != 1 {
		t.Fatalf("%s: want 1 object, got %d", rel, len(objs))
	}
	return objs[0]
}

var (
	headingRE    = regexp.MustCompile(`^(#{1,6})\s+(.+?)\s*#*\s*$`)
	mdLinkRE     = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
	fenceRE      = regexp.MustCompile("^\\s*(```|~~~)")
	trailingHash = regexp.MustCompile(`\s+#+\s*$`)
)

// markdownAnchors returns the anchors GitHub generates for the headings of a
// Markdown document: lower case, punctuation dropped, spaces to hyphens,
// "-1", "-2"... for repeated headings. Headings in code blocks do not count.
func markdownAnchors(md string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	for _, line := range proseLines(md) {
		m := headingRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		text := trailingHash.ReplaceAllString(m[2], "")
		text = mdLinkRE.ReplaceAllString(text, "$1")
		var b strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteByte('-')
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			anchors[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			anchors[a] = true
		}
		seen[a]++
	}
	return anchors
}

func TestMarkdownAnchors(t *testing.T) {
	md := "# Title\n## Alerts\n### RapportCollectorCommitSlow\n```\n# not a heading\n```\n" +
		"## Feedback tokens (`cx.rapport.dev/feedback-token`)\n## Alerts\n### [Link](x.md) text\n"
	got := markdownAnchors(md)
	for _, want := range []string{"title", "alerts", "rapportcollectorcommitslow",
		"feedback-tokens-cxrapportdevfeedback-token", "alerts-1", "link-text"} {
		if !got[want] {
			t.Errorf("anchor %q missing from %v", want, got)
		}
	}
	if got["not-a-heading"] {
		t.Errorf("a heading inside a code block produced an anchor")
	}
}

// proseLines returns the lines of a Markdown document outside its fenced
// code blocks.
func proseLines(md string) []string {
	var out []string
	inFence := false
	for _, line := range strings.Split(md, "\n") {
		if fenceRE.MatchString(line) {
			inFence = !inFence
			continue
		}
		if !inFence {
			out = append(out, line)
		}
	}
	return out
}

var (
	// inlineCode is a code span: what it holds is not a link.
	inlineCode = regexp.MustCompile("`[^`\n]*`")
	// linkTarget is the target of an inline link or image, up to a title.
	linkTarget = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	// urlScheme starts an absolute URL (https:, mailto:...).
	urlScheme = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
)

// relativeLinks returns the targets of a Markdown document's inline links
// and images that point into the repository (no URL scheme), in order.
// Links in code blocks and code spans do not count.
func relativeLinks(md string) []string {
	var out []string
	for _, line := range proseLines(md) {
		for _, m := range linkTarget.FindAllStringSubmatch(inlineCode.ReplaceAllString(line, ""), -1) {
			if !urlScheme.MatchString(m[1]) {
				out = append(out, m[1])
			}
		}
	}
	return out
}

func TestRelativeLinks(t *testing.T) {
	md := "See [ops](operations.md#alerts) and ![plot](images/a.png \"A plot\").\n" +
		"[web](https://example.com/x) [mail](mailto:a@b.c) [here](#top)\n" +
		"`[not](code.md)` and a pattern `^[a-z]([-a-z0-9]*[a-z0-9])?$`\n" +
		"```\n[not](fenced.md)\n```\n[after](b.md)\n"
	got := relativeLinks(md)
	want := []string{"operations.md#alerts", "images/a.png", "#top", "b.md"}
	if !slices.Equal(got, want) {
		t.Errorf("relativeLinks = %q, want %q", got, want)
	}
}
