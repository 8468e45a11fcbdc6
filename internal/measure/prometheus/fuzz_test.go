package prometheus

import (
	"strings"
	"testing"
	"time"
)

// FuzzRender feeds arbitrary templates and values to the query templating:
// it must never panic, and a rendered query must never contain a value
// that Render refuses (quotes, backslashes, braces, newlines), so nothing
// can break out of a PromQL label matcher.
func FuzzRender(f *testing.F) {
	f.Add(`sum by (score) (x{variant="{{ .Variant }}",segment="{{ .Segment }}"}[{{ .Window }}])`, "one-page", "enterprise", int64(3600))
	f.Add(`{{ .Namespace }}/{{ .Experiment }}`, "a", "b", int64(0))
	f.Add(`{{ .Varient }}`, "a", "all", int64(1))
	f.Add(`{{ range .Variant }}{{ end }}`, `a"}`, "b\nc", int64(-5))
	f.Add(`{{ printf "%s" .Variant }}`, `x\`, "}", int64(1<<40))
	f.Fuzz(func(t *testing.T, tmpl, variant, segment string, window int64) {
		out, err := Render(tmpl, Vars{Variant: variant, Segment: segment, Namespace: "shop", Experiment: "checkout", Window: time.Duration(window)})
		if err != nil {
			return
		}
		for _, v := range []string{variant, segment} {
			if strings.ContainsAny(v, "\"\\{}\n") && strings.Contains(tmpl, "{{") && strings.Contains(out, v) && v != "" {
				// The value was inserted although it holds a character that
				// could escape a label matcher: Render must have refused it.
				t.Fatalf("Render inserted the unsafe value %q into %q", v, out)
			}
		}
	})
}
