package manifests

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"
)

const (
	rulesPath      = "config/prometheus/rules.yaml"
	operationsPath = "docs/operations.md"
	// runbookBase is where the runbooks are published: docs/operations.md on
	// the main branch.
	runbookBase = "https://github.com/rapport-dev/rapport/blob/main/docs/operations.md"
)

// wantAlerts are the alerts Rapport promises operators.
var wantAlerts = []string{
	"RapportExperimentRolledBack",
	"RapportExperimentStuckInconclusive",
	"RapportCollectorRejectingRequests",
	"RapportCollectorCommitSlow",
	"RapportReconcileErrors",
	"RapportRollbackLatencyHigh",
}

type prometheusRule struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   map[string]any `json:"metadata"`
	Spec       ruleSpec       `json:"spec"`
}

type ruleSpec struct {
	Groups []ruleGroup `json:"groups"`
}

type ruleGroup struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Rules    []rule `json:"rules"`
}

type rule struct {
	Alert         string            `json:"alert,omitempty"`
	Record        string            `json:"record,omitempty"`
	Expr          string            `json:"expr"`
	For           string            `json:"for,omitempty"`
	KeepFiringFor string            `json:"keep_firing_for,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// loadRules decodes rules.yaml strictly: a misspelt field fails.
func loadRules(t *testing.T) prometheusRule {
	t.Helper()
	var pr prometheusRule
	if err := yaml.UnmarshalStrict(readRepoFile(t, rulesPath), &pr); err != nil {
		t.Fatalf("%s: %v", rulesPath, err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" {
		t.Fatalf("%s: %s/%s, want monitoring.coreos.com/v1 PrometheusRule", rulesPath, pr.APIVersion, pr.Kind)
	}
	return pr
}

// alertTemplateFuncs stand in for the functions Prometheus offers alert
// templates, so that the annotations parse and execute as they will there.
var alertTemplateFuncs = template.FuncMap{
	"args":               func(...any) map[string]any { return map[string]any{} },
	"externalURL":        func() string { return "" },
	"first":              func([]any) (any, error) { return nil, nil },
	"graphLink":          fmtAny,
	"humanize":           fmtAny,
	"humanize1024":       fmtAny,
	"humanizeDuration":   fmtAny,
	"humanizePercentage": fmtAny,
	"humanizeTimestamp":  fmtAny,
	"label":              func(string, any) string { return "" },
	"match":              func(string, string) (bool, error) { return true, nil },
	"now":                func() float64 { return 0 },
	"parseDuration":      fmtAny,
	"pathPrefix":         func() string { return "" },
	"query":              func(string) ([]any, error) { return nil, nil },
	"reReplaceAll":       func(_, repl, _ string) string { return repl },
	"safeHtml":           fmtAny,
	"sortByLabel":        func(string, []any) []any { return nil },
	"stripDomain":        fmtAny,
	"stripPort":          fmtAny,
	"strvalue":           func(any) string { return "" },
	"tableLink":          fmtAny,
	"title":              fmtAny,
	"toDuration":         fmtAny,
	"toLower":            strings.ToLower,
	"toTime":             fmtAny,
	"toUpper":            strings.ToUpper,
	"value":              func(any) float64 { return 0 },
}

func fmtAny(v any) string { return fmt.Sprint(v) }

// alertTemplateHeader defines the variables Prometheus defines for alert
// templates.
const alertTemplateHeader = `{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}`

func TestAlertRules(t *testing.T) {
	pr := loadRules(t)
	anchors := markdownAnchors(string(readRepoFile(t, operationsPath)))

	groups := map[string]bool{}
	seen := map[string]bool{}
	for _, g := range pr.Spec.Groups {
		if g.Name == "" || groups[g.Name] {
			t.Errorf("group name %q is empty or used twice", g.Name)
		}
		groups[g.Name] = true
		if len(g.Rules) == 0 {
			t.Errorf("group %q has no rules", g.Name)
		}
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			t.Run(name, func(t *testing.T) {
				if (r.Alert == "") == (r.Record == "") {
					t.Fatalf("a rule must have exactly one of alert and record")
				}
				if seen[name] {
					t.Errorf("%s is defined twice", name)
				}
				seen[name] = true

				parsed, errs := checkPromQL(r.Expr)
				for _, err := range errs {
					t.Errorf("expr: %v\n%s", err, r.Expr)
				}
				for field, d := range map[string]string{"for": r.For, "keep_firing_for": r.KeepFiringFor} {
					if d == "" {
						continue
					}
					if _, err := model.ParseDuration(d); err != nil {
						t.Errorf("%s: %v", field, err)
					}
				}
				if r.Record != "" {
					return
				}

				switch sev := r.Labels["severity"]; sev {
				case "critical", "warning", "info":
				default:
					t.Errorf("severity label %q, want critical, warning or info", sev)
				}
				for _, key := range []string{"summary", "description", "runbook_url"} {
					if strings.TrimSpace(r.Annotations[key]) == "" {
						t.Errorf("annotation %s is missing", key)
					}
				}
				checkRunbook(t, r.Alert, r.Annotations["runbook_url"], anchors)

				// The annotations must execute with the labels the
				// expression returns: a label the result does not carry
				// would render as an empty string in every notification.
				labels, unbounded := outputLabels(parsed)
				sample := map[string]string{}
				for l := range labels {
					sample[l] = "sample-" + l
				}
				for key, text := range r.Annotations {
					tmpl, err := template.New(key).Funcs(alertTemplateFuncs).Option("missingkey=error").Parse(alertTemplateHeader + text)
					if err != nil {
						t.Errorf("annotation %s does not parse as an alert template: %v", key, err)
						continue
					}
					if parsed == nil || unbounded {
						continue
					}
					data := map[string]any{"Labels": sample, "ExternalLabels": map[string]string{}, "ExternalURL": "", "Value": 0.5}
					if err := tmpl.Execute(&strings.Builder{}, data); err != nil {
						t.Errorf("annotation %s uses a label the expression does not return (it returns %v): %v",
							key, slices.Sorted(maps.Keys(labels)), err)
					}
				}
			})
		}
	}
	for _, a := range wantAlerts {
		if !seen[a] {
			t.Errorf("alert %s is missing from %s", a, rulesPath)
		}
	}
}

// checkRunbook checks that a runbook URL points at a heading of
// docs/operations.md named after the alert.
func checkRunbook(t *testing.T, alert, runbook string, anchors map[string]bool) {
	t.Helper()
	u, err := url.Parse(runbook)
	if err != nil {
		t.Errorf("runbook_url %q: %v", runbook, err)
		return
	}
	anchor := u.Fragment
	u.Fragment = ""
	if u.String() != runbookBase {
		t.Errorf("runbook_url %q should be %s#<anchor>", runbook, runbookBase)
	}
	if anchor != strings.ToLower(alert) {
		t.Errorf("runbook_url anchor %q, want %q (a heading named after the alert)", anchor, strings.ToLower(alert))
	}
	if !anchors[anchor] {
		t.Errorf("runbook_url anchor #%s is not a heading of %s", anchor, operationsPath)
	}
}

// TestAlertSummariesNameTheExperiment checks the promise of the experiment
// alerts: their summary names the experiment (and, for rollbacks, the
// segment and reason).
func TestAlertSummariesNameTheExperiment(t *testing.T) {
	pr := loadRules(t)
	want := map[string][]string{
		"RapportExperimentRolledBack":        {"namespace", "experiment", "segment", "reason"},
		"RapportExperimentStuckInconclusive": {"namespace", "experiment"},
	}
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			for _, l := range want[r.Alert] {
				if !strings.Contains(r.Annotations["summary"], "$labels."+l) {
					t.Errorf("%s: the summary does not show $labels.%s", r.Alert, l)
				}
			}
		}
	}
}

func TestOutputLabels(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`sum by (a, b) (rate(rapport_rollbacks_total[5m])) > 0`, []string{"a", "b"}},
		{`sum by (a, b) (x) or sum by (b) (y)`, []string{"b"}},
		{`max by (a) (x) and on (a) (max by (a, c) (y))`, []string{"a"}},
		{`histogram_quantile(0.99, sum by (job, le) (rate(x_bucket[5m]))) > 1`, []string{"job"}},
		{`sum by (a, b) (x) / on (a) sum by (a, b) (y)`, []string{"a"}},
	} {
		parsed, err := promql.ParseExpr(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		got, all := outputLabels(parsed)
		if all || !slices.Equal(slices.Sorted(maps.Keys(got)), tc.want) {
			t.Errorf("%s: got %v (unbounded %v), want %v", tc.expr, slices.Sorted(maps.Keys(got)), all, tc.want)
		}
	}
}
