package manifests

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	yamlv3 "go.yaml.in/yaml/v3"
)

// schemaNode is the part of a JSON schema the tests walk.
type schemaNode struct {
	Type       any                    `json:"type"`
	Properties map[string]*schemaNode `json:"properties"`
	Ref        string                 `json:"$ref"`
}

// valueUnits returns the documented units of values.yaml: the paths whose
// schema has no properties of its own (scalars, lists, free-form maps such as
// resources). A map that the schema describes property by property is
// documented through its properties.
func valueUnits(t *testing.T) (units []string, all []string) {
	t.Helper()
	var schema schemaNode
	if err := json.Unmarshal(readRepoFile(t, chartDir+"/values.schema.json"), &schema); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(readRepoFile(t, chartDir+"/values.yaml"), &doc); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	var walk func(path string, n *yamlv3.Node, s *schemaNode)
	walk = func(path string, n *yamlv3.Node, s *schemaNode) {
		if n.Kind != yamlv3.MappingNode {
			t.Fatalf("%s: not a map", path)
		}
		for i := 0; i < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			p := strings.TrimPrefix(path+"."+key.Value, ".")
			all = append(all, p)
			if key.HeadComment == "" && key.LineComment == "" && val.LineComment == "" {
				t.Errorf("values.yaml:%d: %s has no comment", key.Line, p)
			}
			var sub *schemaNode
			if s != nil {
				sub = s.Properties[key.Value]
			}
			if s != nil && s.Properties != nil && sub == nil {
				t.Errorf("values.yaml:%d: %s is not in values.schema.json", key.Line, p)
			}
			if sub != nil && sub.Properties != nil && val.Kind == yamlv3.MappingNode {
				walk(p, val, sub)
				continue
			}
			units = append(units, p)
		}
	}
	walk("", doc.Content[0], &schema)
	return units, all
}

// TestChartValuesDocumented: every value has a comment in values.yaml and a
// row in the README's values table, and every row names a real value.
func TestChartValuesDocumented(t *testing.T) {
	units, all := valueUnits(t)
	readme := string(readRepoFile(t, chartDir+"/README.md"))
	rowRE := regexp.MustCompile("(?m)^\\| `([\\w.]+)` \\|")
	matches := rowRE.FindAllStringSubmatch(readme, -1)
	rows := make([]string, 0, len(matches))
	for _, m := range matches {
		rows = append(rows, m[1])
	}
	if len(rows) < 20 {
		t.Fatalf("found only %d rows in the README's values table", len(rows))
	}
	for _, u := range units {
		if !slices.Contains(rows, u) {
			t.Errorf("value %s has no row in %s/README.md", u, chartDir)
		}
	}
	for _, r := range rows {
		if !slices.Contains(all, r) {
			t.Errorf("%s/README.md documents %s, which values.yaml does not have", chartDir, r)
		}
	}
}

// TestOperationsGuide checks docs/operations.md against the code: every
// metric Rapport defines is documented, every alert has its runbook heading,
// every manager flag is in the configuration table, and the install,
// upgrade and plugin pointers are there.
func TestOperationsGuide(t *testing.T) {
	doc := string(readRepoFile(t, operationsPath))
	anchors := markdownAnchors(doc)

	for name := range sourceMetrics(t) {
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("metric %s is not documented in %s", name, operationsPath)
		}
	}
	for _, g := range loadRules(t).Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" && !anchors[strings.ToLower(r.Alert)] {
				t.Errorf("alert %s has no heading (runbook) in %s", r.Alert, operationsPath)
			}
		}
	}
	for flag := range managerFlags(t) {
		if !strings.Contains(doc, "| `--"+flag+"` |") {
			t.Errorf("flag --%s is not in the configuration table of %s", flag, operationsPath)
		}
	}
	for _, want := range []string{
		"make install deploy IMG=",
		"helm install rapport charts/rapport -n rapport-system --create-namespace",
		"kubectl apply --server-side -f charts/rapport/crds",
		"cx.rapport.dev/feedback-token=true",
		"kubectl-cx.md",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("%s does not mention %q", operationsPath, want)
		}
	}
	for _, heading := range []string{
		"install", "upgrade", "uninstall", "configuration", "metrics", "the-dashboard", "alerts",
		"feedback-tokens", "troubleshooting", "experiment-stuck-in-pending",
		"failed-with-conflictingexperiment", "failed-with-routelimitexceeded", "failed-with-stickinessunsupported",
		"measuredfalse", "collector-answers-401-403-409-413-or-429", "reading-kubectl-describe-cxe",
		"metrics-endpoint-certificate", "letting-prometheus-scrape-the-manager",
	} {
		if !anchors[heading] {
			t.Errorf("%s has no heading #%s", operationsPath, heading)
		}
	}
	// Links inside the guide point at its own headings.
	for _, m := range regexp.MustCompile(`\]\(#([^)]+)\)`).FindAllStringSubmatch(doc, -1) {
		if !anchors[m[1]] {
			t.Errorf("%s links to #%s, which is not a heading", operationsPath, m[1])
		}
	}
}

// TestDocsLinks: every link of the README, docs/ and the chart's README
// that points into the repository names a file that exists and, with a
// fragment into a Markdown file, one of that file's headings. A renamed
// heading or a moved file otherwise leaves a reader on a dead link.
func TestDocsLinks(t *testing.T) {
	docs := []string{"README.md", chartDir + "/README.md"}
	err := filepath.WalkDir(repoPath("docs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			rel, _ := filepath.Rel(root, p)
			docs = append(docs, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]map[string]bool{} // by file, read once
	anchorsOf := func(rel string) map[string]bool {
		if a, ok := anchors[rel]; ok {
			return a
		}
		anchors[rel] = markdownAnchors(string(readRepoFile(t, rel)))
		return anchors[rel]
	}
	checked := 0
	for _, doc := range docs {
		for _, link := range relativeLinks(string(readRepoFile(t, doc))) {
			checked++
			file, fragment, _ := strings.Cut(link, "#")
			target := doc
			if file != "" {
				target = filepath.ToSlash(filepath.Join(filepath.Dir(doc), file))
				if _, err := os.Stat(repoPath(target)); err != nil {
					t.Errorf("%s links to %s: no file %s", doc, link, target)
					continue
				}
			}
			if fragment != "" && strings.HasSuffix(target, ".md") && !anchorsOf(target)[fragment] {
				t.Errorf("%s links to %s: %s has no heading with anchor #%s", doc, link, target, fragment)
			}
		}
	}
	if checked < 100 {
		t.Errorf("checked only %d links in %d documents: is relativeLinks still finding them?", checked, len(docs))
	}
	t.Logf("checked %d links in %d documents", checked, len(docs))
}
