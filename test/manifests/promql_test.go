package manifests

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	promparser "github.com/prometheus/prometheus/promql/parser"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	// Registers controller-runtime's reconcile and workqueue metrics in
	// ctrlmetrics.Registry, as the manager does.
	_ "sigs.k8s.io/controller-runtime/pkg/controller"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/metrics"
)

// promql parses with the stock options of a Prometheus server: the
// dashboard and the rules must not need experimental features.
var promql = promparser.NewParser(promparser.Options{})

// targetLabels are the labels Prometheus Operator attaches to every scraped
// series; an expression may filter or group on them whatever the metric.
var targetLabels = map[string]bool{
	"job": true, "instance": true, "namespace": true, "pod": true,
	"service": true, "endpoint": true, "container": true,
}

// knownLabelValues are the values of Rapport's enumerated labels, from the
// API constants: a matcher on one of them must name a real value.
var knownLabelValues = map[string]map[string][]string{
	"rapport_experiment_phase": {"phase": {
		string(cxv1.PhasePending), string(cxv1.PhaseProgressing), string(cxv1.PhasePaused),
		string(cxv1.PhaseSucceeded), string(cxv1.PhaseRolledBack), string(cxv1.PhaseFailed)}},
	"rapport_variant_verdict": {"verdict": {
		string(cxv1.VerdictInsufficientData), string(cxv1.VerdictInconclusive),
		string(cxv1.VerdictNonInferior), string(cxv1.VerdictInferior)}},
	"rapport_rollbacks_total": {"reason": {
		string(cxv1.RollbackInferior), string(cxv1.RollbackBelowMinimum), string(cxv1.RollbackGuardrail),
		string(cxv1.RollbackInconclusive), string(cxv1.RollbackAborted)}},
	"rapport_promotions_total":      {"how": {"automatic", "manual"}},
	"rapport_traffic_changes_total": {"result": {"applied", "failed"}},
}

// registryMu serialises the registration probes.
var registryMu sync.Mutex

// isRegistered reports whether a collector with this fully-qualified name is
// registered in controller-runtime's registry (the one the manager serves).
// It registers a probe gauge under the name: the registry refuses it when
// the name is taken (by a descriptor with other labels or help), and the
// probe is unregistered at once when it is not.
func isRegistered(name string) (bool, error) {
	registryMu.Lock()
	defer registryMu.Unlock()
	probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "registration probe of test/manifests"})
	err := ctrlmetrics.Registry.Register(probe)
	if err == nil {
		ctrlmetrics.Registry.Unregister(probe)
		return false, nil
	}
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) || strings.Contains(err.Error(), "previously registered descriptor with the same fully-qualified name") {
		return true, nil
	}
	return false, err
}

// metricInfo is what the tests know of a registered metric.
type metricInfo struct {
	kind   dto.MetricType
	labels map[string]bool // nil: not known (no series to look at)
}

var (
	gatherOnce sync.Once
	gathered   map[string]metricInfo
	gatherErr  error
)

// rapportSeries gives every Rapport metric at least one series, through the
// package's own entry points where it has them, and gathers the registry:
// the families tell each metric's type and label names.
func rapportSeries() (map[string]metricInfo, error) {
	gatherOnce.Do(func() {
		exp := &cxv1.CXExperiment{
			ObjectMeta: metav1.ObjectMeta{Namespace: "manifests-test", Name: "probe"},
			Spec: cxv1.CXExperimentSpec{
				Touchpoint: "checkout",
				Steps:      []cxv1.Step{{Weight: 5}},
			},
			Status: cxv1.CXExperimentStatus{
				Phase: cxv1.PhaseProgressing, CurrentStep: 1,
				Segments: []cxv1.SegmentStatus{{Name: "all", Variants: []cxv1.VariantStatus{
					{Name: "control", State: cxv1.StateControl, Weight: 95, Responses: 10, Score: "80", ScoreInterval: "[70, 90]"},
					{Name: "new", State: cxv1.StateActive, Weight: 5, Responses: 10, Score: "79", ScoreInterval: "[69, 89]",
						Difference: "-1", DifferenceInterval: "[-8, 6]", Verdict: cxv1.VerdictInconclusive},
				}}},
			},
		}
		metrics.ObserveExperiment(exp)
		metrics.RecordRollbacks(exp, []cxv1.Rollback{{Segment: "all", Variant: "new", Reason: cxv1.RollbackInferior}})
		metrics.Promotions.WithLabelValues(exp.Namespace, exp.Name, "all", "automatic").Add(0)
		metrics.TrafficChanges.WithLabelValues(exp.Namespace, exp.Name, "applied").Add(0)
		metrics.FeedbackResponses.WithLabelValues(exp.Namespace, exp.Name, "new", "all", "4").Add(0)
		metrics.CollectorRequests.WithLabelValues("202").Add(0)
		defer metrics.ForgetExperiment(exp.Namespace, exp.Name)

		families, err := ctrlmetrics.Registry.Gather()
		if err != nil {
			gatherErr = err
			return
		}
		gathered = map[string]metricInfo{}
		for _, f := range families {
			info := metricInfo{kind: f.GetType(), labels: map[string]bool{}}
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					info.labels[l.GetName()] = true
				}
			}
			gathered[f.GetName()] = info
		}
	})
	return gathered, gatherErr
}

// controllerRuntimeLabels are the label names of the controller-runtime
// metrics the dashboard and the rules use; they have no series until a
// controller starts, so the registry cannot tell them.
var controllerRuntimeLabels = map[string][]string{
	"controller_runtime_reconcile_total":        {"controller", "result"},
	"controller_runtime_reconcile_errors_total": {"controller"},
	"controller_runtime_reconcile_time_seconds": {"controller"},
	"workqueue_depth":                           {"name", "controller", "priority"},
	"workqueue_queue_duration_seconds":          {"name", "controller"},
	"workqueue_work_duration_seconds":           {"name", "controller"},
	"workqueue_adds_total":                      {"name", "controller"},
	"workqueue_retries_total":                   {"name", "controller"},
}

// resolveMetric maps a series name of PromQL to the registered metric: the
// name itself, or a histogram/summary with the _bucket, _sum or _count
// suffix removed.
func resolveMetric(name string) (base string, info metricInfo, err error) {
	fams, err := rapportSeries()
	if err != nil {
		return "", metricInfo{}, err
	}
	candidates := []string{name}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(name, suffix); ok {
			candidates = append(candidates, b)
		}
	}
	for _, c := range candidates {
		ok, err := isRegistered(c)
		if err != nil {
			return "", metricInfo{}, fmt.Errorf("probe %s: %w", c, err)
		}
		if !ok {
			continue
		}
		info := fams[c]
		if info.labels == nil {
			if ls, ok := controllerRuntimeLabels[c]; ok {
				info.labels = map[string]bool{}
				for _, l := range ls {
					info.labels[l] = true
				}
			}
		}
		f, gatheredKind := fams[c]
		summaryOrHistogram := f.kind == dto.MetricType_HISTOGRAM || f.kind == dto.MetricType_SUMMARY
		if c == name && gatheredKind && summaryOrHistogram {
			return "", metricInfo{}, fmt.Errorf("%s is a %s: select its _bucket, _sum or _count series", name, f.kind)
		}
		if c != name {
			suffix := strings.TrimPrefix(name, c)
			if gatheredKind && !(f.kind == dto.MetricType_HISTOGRAM || (f.kind == dto.MetricType_SUMMARY && suffix != "_bucket")) {
				return "", metricInfo{}, fmt.Errorf("%s: %s is a %s, it has no %s series", name, c, f.kind, suffix)
			}
			if info.labels != nil && suffix == "_bucket" {
				info.labels = mapWith(info.labels, "le")
			}
		}
		return c, info, nil
	}
	return "", metricInfo{}, fmt.Errorf("metric %s is registered neither by Rapport (internal/metrics) nor by controller-runtime", name)
}

func mapWith(m map[string]bool, keys ...string) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	for _, k := range keys {
		out[k] = true
	}
	return out
}

// checkPromQL parses an expression and checks the metrics and labels it
// uses. It returns the parsed expression (nil when it does not parse).
func checkPromQL(expr string) (promparser.Expr, []error) {
	parsed, err := promql.ParseExpr(expr)
	if err != nil {
		return nil, []error{fmt.Errorf("does not parse: %w", err)}
	}
	var errs []error
	selectors := 0
	promparser.Inspect(parsed, func(node promparser.Node, _ []promparser.Node) error {
		switch n := node.(type) {
		case *promparser.VectorSelector:
			selectors++
			errs = append(errs, checkSelector(n)...)
		case *promparser.AggregateExpr:
			if vs := innerSelector(n.Expr); vs != nil && !n.Without {
				if base, info, err := resolveMetric(vs.Name); err == nil && info.labels != nil {
					for _, g := range n.Grouping {
						if !info.labels[g] && !targetLabels[g] {
							errs = append(errs, fmt.Errorf("%s by (%s): %s has no label %q", n.Op, strings.Join(n.Grouping, ", "), base, g))
						}
					}
				}
			}
		}
		return nil
	})
	if selectors == 0 && !isConstant(parsed) {
		errs = append(errs, errors.New("selects no series"))
	}
	return parsed, errs
}

// isConstant reports expressions such as vector(0), used for threshold lines.
func isConstant(e promparser.Expr) bool {
	c, ok := e.(*promparser.Call)
	return ok && c.Func.Name == "vector"
}

func checkSelector(vs *promparser.VectorSelector) []error {
	name := vs.Name
	if name == "" {
		for _, m := range vs.LabelMatchers {
			if m.Name == "__name__" {
				name = m.Value
			}
		}
	}
	if name == "" {
		return []error{fmt.Errorf("%s: selectors must name their metric", vs)}
	}
	base, info, err := resolveMetric(name)
	if err != nil {
		return []error{err}
	}
	var errs []error
	for _, m := range vs.LabelMatchers {
		if m.Name == "__name__" {
			continue
		}
		if info.labels != nil && !info.labels[m.Name] && !targetLabels[m.Name] {
			errs = append(errs, fmt.Errorf("%s: %s has no label %q (it has %s)", vs, base, m.Name, strings.Join(sortedKeys(info.labels), ", ")))
			continue
		}
		allowed := knownLabelValues[base][m.Name]
		if allowed == nil || strings.Contains(m.Value, "$") {
			continue
		}
		values := []string{m.Value}
		if m.Type.String() == "=~" || m.Type.String() == "!~" {
			values = strings.Split(m.Value, "|")
		}
		for _, v := range values {
			if !slices.Contains(allowed, v) {
				errs = append(errs, fmt.Errorf("%s: %q is not a value of %s{%s} (values: %s)", vs, v, base, m.Name, strings.Join(allowed, ", ")))
			}
		}
	}
	return errs
}

// innerSelector returns the selector an aggregation works on directly
// (through functions, ranges, subqueries and parentheses), or nil when it
// aggregates the result of an operator.
func innerSelector(e promparser.Expr) *promparser.VectorSelector {
	switch n := e.(type) {
	case *promparser.VectorSelector:
		return n
	case *promparser.MatrixSelector:
		return innerSelector(n.VectorSelector)
	case *promparser.SubqueryExpr:
		return innerSelector(n.Expr)
	case *promparser.ParenExpr:
		return innerSelector(n.Expr)
	case *promparser.Call:
		for _, a := range n.Args {
			switch a.Type() {
			case promparser.ValueTypeVector, promparser.ValueTypeMatrix:
				return innerSelector(a)
			}
		}
	}
	return nil
}

// outputLabels returns the labels every result series of an expression
// carries; all is true when that is not bounded (a bare selector's labels
// are the metric's and the target's).
func outputLabels(e promparser.Expr) (labels map[string]bool, all bool) {
	switch n := e.(type) {
	case *promparser.AggregateExpr:
		if n.Without {
			return nil, true
		}
		out := map[string]bool{}
		for _, g := range n.Grouping {
			out[g] = true
		}
		return out, false
	case *promparser.BinaryExpr:
		lhs, lall := outputLabels(n.LHS)
		rhs, rall := outputLabels(n.RHS)
		switch {
		case n.Op == promparser.LOR:
			// A label is certain only when both sides carry it.
			switch {
			case lall && rall:
				return nil, true
			case lall:
				return rhs, false
			case rall:
				return lhs, false
			}
			return mapIntersection(lhs, rhs), false
		case n.Op == promparser.LAND || n.Op == promparser.LUNLESS:
			return lhs, lall
		case n.LHS.Type() == promparser.ValueTypeScalar:
			return rhs, rall
		case n.RHS.Type() == promparser.ValueTypeScalar:
			return lhs, lall
		case n.VectorMatching != nil && n.VectorMatching.Card == promparser.CardOneToOne && n.VectorMatching.On:
			out := map[string]bool{}
			for _, l := range n.VectorMatching.MatchingLabels {
				if lall || lhs[l] {
					out[l] = true
				}
			}
			return out, false
		default:
			return lhs, lall
		}
	case *promparser.ParenExpr:
		return outputLabels(n.Expr)
	case *promparser.Call:
		switch n.Func.Name {
		case "vector", "time", "scalar":
			return map[string]bool{}, false
		case "histogram_quantile":
			l, all := outputLabels(n.Args[1])
			if all {
				return nil, true
			}
			delete(l, "le")
			return l, false
		case "label_replace", "label_join":
			return nil, true
		}
		for _, a := range n.Args {
			if a.Type() == promparser.ValueTypeVector || a.Type() == promparser.ValueTypeMatrix {
				return outputLabels(a)
			}
		}
		return map[string]bool{}, false
	case *promparser.MatrixSelector:
		return outputLabels(n.VectorSelector)
	case *promparser.SubqueryExpr:
		return outputLabels(n.Expr)
	case *promparser.NumberLiteral, *promparser.StringLiteral:
		return map[string]bool{}, false
	}
	return nil, true
}

func mapIntersection(a, b map[string]bool) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		if b[k] {
			out[k] = true
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// grafanaVarRE matches Grafana variable references: $name, ${name},
// ${name:format} and [[name]].
var grafanaVarRE = regexp.MustCompile(`\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)\]\]`)

// grafanaBuiltins are Grafana's global variables, with sample values that
// keep a query valid PromQL.
var grafanaBuiltins = map[string]string{
	"__rate_interval": "5m", "__interval": "1m", "__range": "6h",
	"__interval_ms": "60000", "__range_s": "21600", "__range_ms": "21600000",
}

// substituteVars replaces Grafana variables with sample values: builtins
// with durations or numbers, dashboard variables with their sample value.
// It reports the variables that are neither.
func substituteVars(s string, samples map[string]string) (string, []string) {
	var undefined []string
	out := grafanaVarRE.ReplaceAllStringFunc(s, func(ref string) string {
		m := grafanaVarRE.FindStringSubmatch(ref)
		name := m[1] + m[2] + m[3]
		if v, ok := grafanaBuiltins[name]; ok {
			return v
		}
		if v, ok := samples[name]; ok {
			return v
		}
		undefined = append(undefined, name)
		return ref
	})
	return out, undefined
}

// sourceMetrics lists the metrics defined in internal/metrics, read from the
// Go source (every Name of a prometheus.*Opts literal, with its Namespace
// and Subsystem), with the kind of each.
func sourceMetrics(t testing.TB) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob(repoPath("internal/metrics/*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in internal/metrics: %v", err)
	}
	out := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			sel, ok := lit.Type.(*ast.SelectorExpr)
			if !ok || !strings.HasSuffix(sel.Sel.Name, "Opts") {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "prometheus" {
				return true
			}
			parts := map[string]string{}
			for _, elt := range lit.Elts {
				kv, ok := elt.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				key, ok := kv.Key.(*ast.Ident)
				val, ok2 := kv.Value.(*ast.BasicLit)
				if !ok || !ok2 || val.Kind != token.STRING {
					continue
				}
				s, err := strconv.Unquote(val.Value)
				if err == nil {
					parts[key.Name] = s
				}
			}
			if parts["Name"] == "" {
				t.Errorf("%s: a prometheus.%s without a literal Name; the docs and dashboard checks cannot see it", fset.Position(lit.Pos()), sel.Sel.Name)
				return true
			}
			name := prometheus.BuildFQName(parts["Namespace"], parts["Subsystem"], parts["Name"])
			out[name] = strings.TrimSuffix(sel.Sel.Name, "Opts")
			return true
		})
	}
	return out
}

// TestRapportMetricsRegistered cross-checks the two views of Rapport's
// metrics: every metric defined in internal/metrics is registered in the
// manager's registry, and controller-runtime's metrics are there too.
func TestRapportMetricsRegistered(t *testing.T) {
	defined := sourceMetrics(t)
	if len(defined) < 15 {
		t.Fatalf("found only %d metrics in internal/metrics: %v", len(defined), sortedKeys(defined))
	}
	names := append(sortedKeys(defined), "controller_runtime_reconcile_total", "controller_runtime_reconcile_errors_total",
		"controller_runtime_reconcile_time_seconds", "workqueue_depth", "workqueue_queue_duration_seconds")
	for _, name := range names {
		ok, err := isRegistered(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if !ok {
			t.Errorf("%s is not registered in controller-runtime's metrics.Registry", name)
		}
	}
	if ok, _ := isRegistered("rapport_no_such_metric"); ok {
		t.Fatalf("the registration probe claims an unknown metric exists")
	}
}

func TestCheckPromQLCatchesMistakes(t *testing.T) {
	for _, tc := range []struct {
		expr, want string
	}{
		{`rapport_experiment_phase{phase="Progressing"}`, ""},
		{`histogram_quantile(0.99, sum by (le) (rate(rapport_collector_commit_duration_seconds_bucket[5m])))`, ""},
		{`sum by (controller) (rate(controller_runtime_reconcile_errors_total[5m]))`, ""},
		{`rapport_experiment_phase{phase="Running"}`, `"Running" is not a value`},
		{`rapport_experiment_phase{segment="x"}`, `has no label "segment"`},
		{`sum by (segmnet) (rapport_traffic_weight_ratio)`, `has no label "segmnet"`},
		{`rapport_no_such_metric`, "registered neither"},
		{`rate(rapport_experiment_step_bucket[5m])`, "no _bucket series"},
		{`sum(rate(rapport_rollbacks_total[5m]`, "does not parse"},
		{`rapport_rollback_latency_seconds > 1`, "select its _bucket, _sum or _count series"},
		{`vector(1)`, ""},
		{`1 + 1`, "selects no series"},
	} {
		_, errs := checkPromQL(tc.expr)
		joined := fmt.Sprint(errs)
		if tc.want == "" && len(errs) > 0 {
			t.Errorf("%s: unexpected errors %v", tc.expr, errs)
		}
		if tc.want != "" && !strings.Contains(joined, tc.want) {
			t.Errorf("%s: want an error containing %q, got %v", tc.expr, tc.want, errs)
		}
	}
}

func TestSubstituteVars(t *testing.T) {
	samples := map[string]string{"namespace": "sample", "max_drop": "3"}
	got, undefined := substituteVars(`x{namespace="$namespace"}[$__rate_interval] > -${max_drop} or y{a="[[namespace]]", b="${namespace:regex}"} $nope`, samples)
	want := `x{namespace="sample"}[5m] > -3 or y{a="sample", b="sample"} $nope`
	if got != want || !slices.Equal(undefined, []string{"nope"}) {
		t.Errorf("got %q, undefined %v; want %q, [nope]", got, undefined, want)
	}
}
