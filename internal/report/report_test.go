package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

func render(t *testing.T, in Input) (string, *html.Node) {
	t.Helper()
	var b bytes.Buffer
	if err := WriteHTML(&b, in); err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatalf("the report is not HTML: %v", err)
	}
	if dir := os.Getenv("REPORT_OUT"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".html"), b.Bytes(), 0o644)
	}
	return b.String(), doc
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func walk(n *html.Node, f func(*html.Node)) {
	f(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

func elements(doc *html.Node, tag string) []*html.Node {
	var out []*html.Node
	walk(doc, func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == tag {
			out = append(out, n)
		}
	})
	return out
}

func text(n *html.Node) string {
	var b strings.Builder
	walk(n, func(c *html.Node) {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	})
	return b.String()
}

func TestReportIsSelfContained(t *testing.T) {
	out, doc := render(t, fixture(nil))
	if len(elements(doc, "script")) > 0 || strings.Contains(strings.ToLower(out), "<script") {
		t.Error("the report has a script")
	}
	walk(doc, func(n *html.Node) {
		if n.Type != html.ElementNode {
			return
		}
		for _, a := range n.Attr {
			if (a.Key == "src" || a.Key == "href" || strings.HasSuffix(a.Key, ":href")) && a.Val != "" && !strings.HasPrefix(a.Val, "#") {
				t.Errorf("<%s %s=%q> loads a resource", n.Data, a.Key, a.Val)
			}
		}
	})
	for _, s := range elements(doc, "style") {
		if css := text(s); strings.Contains(css, "url(") || strings.Contains(css, "@import") {
			t.Errorf("the CSS loads a resource: %q", css)
		}
	}
	for _, l := range elements(doc, "link") {
		t.Errorf("the report links a resource: %v", l.Attr)
	}
}

func TestReportHasOneDifferenceChartPerSegmentWithTextAlternatives(t *testing.T) {
	tests := []struct {
		name        string
		minimum     *string
		perSegment  int // charts per segment: difference, (floor,) weights, responses
		wantFloorOn bool
	}{
		{"without a floor", nil, 3, false},
		{"with a floor", ptr("80"), 4, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, doc := render(t, fixture(tt.minimum))
			for _, seg := range []string{"enterprise", "new-customers"} {
				var sec *html.Node
				walk(doc, func(n *html.Node) {
					if v, _ := attr(n, "data-segment"); n.Data == "section" && v == seg {
						sec = n
					}
				})
				if sec == nil {
					t.Fatalf("no section for segment %s", seg)
				}
				svgs := elements(sec, "svg")
				if len(svgs) != tt.perSegment {
					t.Errorf("segment %s: %d charts, want %d", seg, len(svgs), tt.perSegment)
				}
				diffs := 0
				for _, s := range svgs {
					if id, _ := attr(s, "id"); strings.HasSuffix(id, "-difference") {
						diffs++
					}
				}
				if diffs != 1 {
					t.Errorf("segment %s: %d difference charts, want 1", seg, diffs)
				}
				if got := strings.Contains(text(sec), "against the floor"); got != tt.wantFloorOn {
					t.Errorf("segment %s: floor chart present = %v, want %v", seg, got, tt.wantFloorOn)
				}
			}
			for _, s := range elements(doc, "svg") {
				id, _ := attr(s, "id")
				if role, _ := attr(s, "role"); role != "img" {
					t.Errorf("chart %s: role %q, want img", id, role)
				}
				labels, _ := attr(s, "aria-labelledby")
				for _, ref := range strings.Fields(labels) {
					if !strings.Contains(out, `id="`+ref+`"`) {
						t.Errorf("chart %s: aria-labelledby names %s, which does not exist", id, ref)
					}
				}
				if len(elements(s, "title")) != 1 || len(elements(s, "desc")) != 1 || text(elements(s, "desc")[0]) == "" {
					t.Errorf("chart %s: want one <title> and a non-empty <desc>", id)
				}
				if len(elements(s, "path")) == 0 {
					t.Errorf("chart %s: nothing drawn", id)
				}
				fig := s.Parent
				if fig == nil || fig.Data != "figure" || len(elements(fig, "table")) != 1 || len(elements(elements(fig, "table")[0], "tr")) < 2 {
					t.Errorf("chart %s: want a table of its figures next to it", id)
				}
			}
		})
	}
}

func TestReportSaysWhatItShows(t *testing.T) {
	out, doc := render(t, fixture(nil))
	body := text(doc)
	for _, want := range []string{
		"One-page checkout keeps customers as satisfied", // hypothesis
		"checkout", // touchpoint
		"Succeeded: new-customers serves one-page; enterprise keeps the control.",
		"−maxDrop (-3)",                   // the threshold line's legend (drawn text)
		"decision: rollback of one-page",  // the decision marker in enterprise
		"decision: promotion of one-page", // and in new-customers
		"Decision marked: rollback of one-page at 2026-03-01 09:25:00",
		"at most 5%", // the guarantee, with alpha
		"Score distribution per variant",
	} {
		if !strings.Contains(body, want) && !strings.Contains(out, want) {
			t.Errorf("the report does not say %q", want)
		}
	}
}

func TestReportWithoutHistoryOrTallySaysSo(t *testing.T) {
	in := fixture(nil)
	in.History, in.Tally = nil, nil
	_, doc := render(t, in)
	body := text(doc)
	if n := len(elements(doc, "svg")); n != 0 {
		t.Errorf("%d charts without data, want 0", n)
	}
	for _, want := range []string{"No history of this run was recorded", "score distribution is not shown"} {
		if !strings.Contains(body, want) {
			t.Errorf("the report does not say %q", want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestTickFormat(t *testing.T) {
	tests := []struct {
		span time.Duration
		want string
	}{
		{30 * time.Second, "15:04:05"}, // make demo's run
		{10 * time.Minute, "15:04:05"},
		{time.Hour, "15:04"},
		{12 * time.Hour, "Jan 2\n15:04"},
		{7 * 24 * time.Hour, "Jan 2"},
	}
	for _, tt := range tests {
		if got := tickFormat(tt.span); got != tt.want {
			t.Errorf("tickFormat(%v) = %q, want %q", tt.span, got, tt.want)
		}
	}
}
