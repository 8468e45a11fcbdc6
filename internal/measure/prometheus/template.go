package prometheus

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

// Vars are the values a query template may use.
type Vars struct {
	// Variant is the variant's name: {{ .Variant }}.
	Variant string
	// Segment is the CustomerSegment's name, or "all" for an experiment
	// without segments: {{ .Segment }}.
	Segment string
	// Namespace is the experiment's namespace: {{ .Namespace }}.
	Namespace string
	// Experiment is the experiment's name: {{ .Experiment }}.
	Experiment string
	// Window is the time since the run started: {{ .Window }}, rendered by
	// FormatWindow as whole seconds, e.g. 3725s.
	Window time.Duration
}

// Fields is the list of fields a query template may use, for messages.
const Fields = "{{ .Variant }}, {{ .Segment }}, {{ .Namespace }}, {{ .Experiment }}, {{ .Window }}"

// maxValueLength bounds a value put into a query (a DNS subdomain is at most 253).
const maxValueLength = 253

// sampleVars are used by Validate to render a template without an experiment.
var sampleVars = Vars{
	Variant:    "sample-variant",
	Segment:    "all",
	Namespace:  "sample-namespace",
	Experiment: "sample-experiment",
	Window:     time.Hour,
}

// FormatWindow renders a duration as a PromQL duration, rounded up to the
// millisecond and at least 1s: whole seconds as seconds (1h2m5s becomes
// "3725s"), anything else in milliseconds (an epoch of 90.25s becomes
// "90250ms", so consecutive epochs' windows meet exactly); 0 becomes "1s".
func FormatWindow(d time.Duration) string {
	if d <= time.Second {
		return "1s"
	}
	ms := int64((d + time.Millisecond - 1) / time.Millisecond)
	if ms%1000 == 0 {
		return strconv.FormatInt(ms/1000, 10) + "s"
	}
	return strconv.FormatInt(ms, 10) + "ms"
}

// checkValue refuses a value that could change the meaning of the query it
// is inserted into. Names reaching here are DNS labels (or subdomains)
// already validated by the CRDs, so the allowed set is small: letters,
// digits, '-', '_' and '.'. Anything else (a quote, a backslash, a brace,
// a newline, a space, ...) could break out of a PromQL label matcher such as
// variant="{{ .Variant }}" and is refused rather than escaped. An empty
// value is refused too: variant="" matches every series WITHOUT the label,
// which would silently count the wrong responses.
func checkValue(field, value string) error {
	if value == "" {
		return fmt.Errorf("%s is empty; an empty label value would match series without the label", field)
	}
	if len(value) > maxValueLength {
		return fmt.Errorf("%s %.40q... is longer than %d characters", field, value, maxValueLength)
	}
	for i, r := range value {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return fmt.Errorf("%s %q cannot be put into a PromQL query: character %q at offset %d is not allowed (only letters, digits, '-', '_' and '.')", field, value, r, i)
		}
	}
	return nil
}

// data checks v and returns the template data.
func (v Vars) data() (map[string]any, error) {
	for _, f := range []struct{ name, value string }{
		{"variant", v.Variant},
		{"segment", v.Segment},
		{"namespace", v.Namespace},
		{"experiment", v.Experiment},
	} {
		if err := checkValue(f.name, f.value); err != nil {
			return nil, err
		}
	}
	// A map (not a struct) so that missingkey=error names the unknown field.
	return map[string]any{
		"Variant":    v.Variant,
		"Segment":    v.Segment,
		"Namespace":  v.Namespace,
		"Experiment": v.Experiment,
		"Window":     FormatWindow(v.Window),
	}, nil
}

// compile parses a query template.
func compile(tmpl string) (*template.Template, error) {
	if strings.TrimSpace(tmpl) == "" {
		return nil, errors.New("query template is empty")
	}
	t, err := template.New("query").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return nil, fmt.Errorf("parse query template: %w", err)
	}
	return t, nil
}

// execute renders a compiled template with v.
func execute(t *template.Template, v Vars) (string, error) {
	data, err := v.data()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("render query template (fields are %s): %w", Fields, err)
	}
	out := strings.TrimSpace(b.String())
	if out == "" {
		return "", errors.New("query template renders an empty query")
	}
	return out, nil
}

// Render fills a query template with v. It fails on a template that does not
// parse, on a field other than those in Fields (missingkey=error), on a value
// that is not safe to put into a PromQL label matcher, and on an empty result.
func Render(tmpl string, v Vars) (string, error) {
	t, err := compile(tmpl)
	if err != nil {
		return "", err
	}
	return execute(t, v)
}

// promqlParser accepts every optional PromQL feature, so that Validate only
// reports real syntax errors and not syntax a newer server may accept.
var promqlParser = parser.NewParser(parser.Options{
	EnableExperimentalFunctions:  true,
	ExperimentalDurationExpr:     true,
	EnableExtendedRangeSelectors: true,
	EnableBinopFillModifiers:     true,
})

// Validate checks a query template before it is used: it must parse as a
// template, render with sample values, and the rendered query must parse as
// PromQL. Reconcilers call it to report a bad template in a Ready condition
// instead of at the first measurement.
func Validate(tmpl string) error {
	q, err := Render(tmpl, sampleVars)
	if err != nil {
		return err
	}
	if _, err := promqlParser.ParseExpr(q); err != nil {
		return fmt.Errorf("rendered query %q is not valid PromQL: %w", truncate(q, 200), err)
	}
	return nil
}

// truncate shortens s to at most n bytes for messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
