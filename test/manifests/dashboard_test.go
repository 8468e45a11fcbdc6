package manifests

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	promparser "github.com/prometheus/prometheus/promql/parser"
)

const dashboardPath = "config/grafana/rapport-dashboard.json"

// The parts of the Grafana dashboard model the tests look at.
type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []annotation `json:"list"`
	} `json:"annotations"`
	Panels []panel `json:"panels"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func dsString(d *datasourceRef) string {
	if d == nil {
		return "none"
	}
	return fmt.Sprintf("{type: %q, uid: %q}", d.Type, d.UID)
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	Datasource *datasourceRef  `json:"datasource"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
}

// queryString returns the variable's query, stored either as a string or as
// {"query": "..."} by newer Grafana versions.
func (v variable) queryString() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var obj struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(v.Query, &obj) == nil && obj.Query != "" {
		return obj.Query
	}
	return v.Definition
}

type annotation struct {
	Name       string         `json:"name"`
	BuiltIn    int            `json:"builtIn"`
	Datasource *datasourceRef `json:"datasource"`
	Expr       string         `json:"expr"`
}

type panel struct {
	ID          int                      `json:"id"`
	Type        string                   `json:"type"`
	Title       string                   `json:"title"`
	Datasource  *datasourceRef           `json:"datasource"`
	Repeat      string                   `json:"repeat"`
	GridPos     struct{ H, W, X, Y int } `json:"gridPos"`
	Targets     []panelTarget            `json:"targets"`
	Panels      []panel                  `json:"panels"` // a collapsed row's panels
	FieldConfig struct {
		Defaults struct {
			Unit     string            `json:"unit"`
			Mappings []json.RawMessage `json:"mappings"`
		} `json:"defaults"`
		Overrides []struct {
			Properties []struct {
				ID    string `json:"id"`
				Value any    `json:"value"`
			} `json:"properties"`
		} `json:"overrides"`
	} `json:"fieldConfig"`
}

type panelTarget struct {
	RefID        string         `json:"refId"`
	Expr         string         `json:"expr"`
	LegendFormat string         `json:"legendFormat"`
	Datasource   *datasourceRef `json:"datasource"`
}

func loadDashboard(t *testing.T) (dashboard, []byte) {
	t.Helper()
	raw := readRepoFile(t, dashboardPath)
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s does not parse: %v", dashboardPath, err)
	}
	return d, raw
}

// allPanels flattens rows (expanded rows are followed by their panels;
// collapsed rows hold them).
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// variableSamples returns a sample value per dashboard variable: the default
// of textbox, constant and custom variables (so that numeric ones stay
// numbers), a plain name for the others.
func variableSamples(d dashboard) map[string]string {
	samples := map[string]string{}
	for _, v := range d.Templating.List {
		switch v.Type {
		case "textbox", "constant", "custom":
			q := strings.Split(v.queryString(), ",")[0]
			samples[v.Name] = strings.TrimSpace(q)
		case "datasource":
			samples[v.Name] = "prometheus"
		default:
			samples[v.Name] = "sample"
		}
	}
	return samples
}

func TestDashboardStructure(t *testing.T) {
	d, _ := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("the dashboard needs a uid and a title (uid %q, title %q)", d.UID, d.Title)
	}
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion %d, want >= 39", d.SchemaVersion)
	}

	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		if _, dup := vars[v.Name]; dup {
			t.Errorf("variable %q is defined twice", v.Name)
		}
		vars[v.Name] = v
	}
	if ds, ok := vars["datasource"]; !ok || ds.Type != "datasource" || ds.queryString() != "prometheus" {
		t.Errorf("want a variable `datasource` of type datasource, query prometheus; got %+v", ds)
	}
	labelValuesRE := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
	for _, tc := range []struct{ name, label, mustFilterOn string }{
		{"namespace", "namespace", ""},
		{"experiment", "experiment", "$namespace"},
	} {
		v, ok := vars[tc.name]
		if !ok {
			t.Errorf("variable %q is missing", tc.name)
			continue
		}
		m := labelValuesRE.FindStringSubmatch(v.queryString())
		switch {
		case v.Type != "query":
			t.Errorf("variable %q: type %q, want query", tc.name, v.Type)
		case m == nil || m[2] != tc.label:
			t.Errorf("variable %q: query %q, want label_values(..., %s)", tc.name, v.queryString(), tc.label)
		case tc.mustFilterOn != "" && !strings.Contains(m[1], tc.mustFilterOn):
			t.Errorf("variable %q: query %q should filter on %s", tc.name, v.queryString(), tc.mustFilterOn)
		}
		if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("variable %q: datasource %s, want uid ${datasource}", tc.name, dsString(v.Datasource))
		}
	}

	ids := map[int]string{}
	for _, p := range allPanels(d.Panels) {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("%s: id also used by %q", where, prev)
		}
		ids[p.ID] = p.Title
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("%s: gridPos %+v does not fit the 24-column grid", where, p.GridPos)
		}
		if p.Repeat != "" {
			if _, ok := vars[p.Repeat]; !ok {
				t.Errorf("%s: repeats over undefined variable %q", where, p.Repeat)
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Title == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("%s: datasource %s, want {type: prometheus, uid: ${datasource}}", where, dsString(p.Datasource))
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no queries", where)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				t.Errorf("%s: query %s has no expr", where, tg.RefID)
			}
			if refs[tg.RefID] {
				t.Errorf("%s: refId %s used twice", where, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && tg.Datasource.UID != "${datasource}" {
				t.Errorf("%s: query %s has datasource %s, want the panel's", where, tg.RefID, dsString(tg.Datasource))
			}
		}
	}
	for _, a := range d.Annotations.List {
		if a.BuiltIn == 1 {
			continue
		}
		if a.Datasource == nil || a.Datasource.UID != "${datasource}" || a.Expr == "" {
			t.Errorf("annotation %q: want datasource uid ${datasource} and an expr, got datasource %s, expr %q", a.Name, dsString(a.Datasource), a.Expr)
		}
	}
}

// TestDashboardQueries parses every PromQL expression of the dashboard
// (panels, annotations, variable queries) with variables replaced by sample
// values, and checks the metrics and labels it names.
func TestDashboardQueries(t *testing.T) {
	d, _ := loadDashboard(t)
	samples := variableSamples(d)
	type query struct{ where, expr string }
	var queries []query
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			queries = append(queries, query{fmt.Sprintf("panel %q query %s", p.Title, tg.RefID), tg.Expr})
		}
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			queries = append(queries, query{fmt.Sprintf("annotation %q", a.Name), a.Expr})
		}
	}
	labelValuesRE := regexp.MustCompile(`^label_values\((?:(.+),\s*)?(\w+)\)$`)
	queryResultRE := regexp.MustCompile(`^query_result\((.+)\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q := v.queryString()
		if m := labelValuesRE.FindStringSubmatch(q); m != nil {
			if m[1] != "" {
				queries = append(queries, query{fmt.Sprintf("variable %q", v.Name), m[1]})
			}
		} else if m := queryResultRE.FindStringSubmatch(q); m != nil {
			queries = append(queries, query{fmt.Sprintf("variable %q", v.Name), m[1]})
		} else {
			t.Errorf("variable %q: unsupported query %q (want label_values or query_result)", v.Name, q)
		}
	}
	if len(queries) < 30 {
		t.Fatalf("found only %d queries in the dashboard", len(queries))
	}
	for _, q := range queries {
		expr, undefined := substituteVars(q.expr, samples)
		if len(undefined) > 0 {
			t.Errorf("%s: undefined variables %v in %s", q.where, undefined, q.expr)
			continue
		}
		if _, errs := checkPromQL(expr); len(errs) > 0 {
			t.Errorf("%s: %s\n  %v", q.where, expr, errs)
		}
	}
}

// TestDashboardCoverage checks that the dashboard has the panels operators
// rely on: each entry names the panel type, a metric its queries must use,
// and anything else the panel needs.
func TestDashboardCoverage(t *testing.T) {
	d, _ := loadDashboard(t)
	panels := allPanels(d.Panels)
	uses := func(p panel, metric string) bool {
		for _, tg := range p.Targets {
			if strings.Contains(tg.Expr, metric) {
				return true
			}
		}
		return false
	}
	hasOverride := func(p panel, id string) bool {
		for _, o := range p.FieldConfig.Overrides {
			for _, pr := range o.Properties {
				if pr.ID == id {
					return true
				}
			}
		}
		return false
	}
	for _, tc := range []struct {
		what, typ string
		metrics   []string
		extra     func(panel) error
	}{
		{"phase", "stat", []string{"rapport_experiment_phase"}, nil},
		{"step", "stat", []string{"rapport_experiment_step", "rapport_experiment_steps"}, nil},
		{"traffic weights in percent", "timeseries", []string{"rapport_traffic_weight_ratio"}, func(p panel) error {
			if p.FieldConfig.Defaults.Unit != "percentunit" {
				return fmt.Errorf("unit %q, want percentunit", p.FieldConfig.Defaults.Unit)
			}
			return nil
		}},
		{"satisfaction with its interval as a band", "timeseries", []string{"rapport_satisfaction_score_points", "rapport_satisfaction_score_lower_points", "rapport_satisfaction_score_upper_points"}, func(p panel) error {
			if !hasOverride(p, "custom.fillBelowTo") {
				return fmt.Errorf("no fillBelowTo override: the interval is not drawn as a band")
			}
			return nil
		}},
		{"difference against the control with a threshold line", "timeseries", []string{"rapport_satisfaction_difference_points", "rapport_satisfaction_difference_lower_points", "rapport_satisfaction_difference_upper_points"}, func(p panel) error {
			if !hasOverride(p, "custom.fillBelowTo") {
				return fmt.Errorf("no fillBelowTo override: the interval is not drawn as a band")
			}
			for _, tg := range p.Targets {
				if strings.Contains(tg.Expr, "$max_drop") {
					return nil
				}
			}
			return fmt.Errorf("no -maxDrop threshold line")
		}},
		{"responses per variant and segment", "timeseries", []string{"rapport_satisfaction_responses"}, nil},
		{"responses received by the collector", "timeseries", []string{"rapport_feedback_responses_total"}, nil},
		{"verdicts over time", "state-timeline", []string{"rapport_variant_verdict"}, func(p panel) error {
			if len(p.FieldConfig.Defaults.Mappings) == 0 {
				return fmt.Errorf("no value mappings from codes to verdict names")
			}
			return nil
		}},
		{"rollbacks", "stat", []string{"rapport_rollbacks_total"}, nil},
		{"promotions", "stat", []string{"rapport_promotions_total"}, nil},
		{"traffic changes", "timeseries", []string{"rapport_traffic_changes_total"}, nil},
		{"rollback latency p50/p99", "timeseries", []string{"rapport_rollback_latency_seconds_bucket", "histogram_quantile(0.5", "histogram_quantile(0.99"}, nil},
		{"collector requests by code", "timeseries", []string{"rapport_collector_requests_total"}, nil},
		{"collector commit latency", "timeseries", []string{"rapport_collector_commit_duration_seconds_bucket"}, nil},
		{"requests per commit", "timeseries", []string{"rapport_collector_commit_batches"}, nil},
		{"tally write conflicts against commits", "timeseries", []string{"rapport_collector_commit_conflicts_total", "rapport_collector_commit_duration_seconds_count"}, nil},
		{"reconcile errors", "timeseries", []string{"controller_runtime_reconcile_errors_total"}, nil},
		{"reconcile duration", "timeseries", []string{"controller_runtime_reconcile_time_seconds_bucket"}, nil},
	} {
		found := false
		var problems []string
		for _, p := range panels {
			if p.Type != tc.typ {
				continue
			}
			all := true
			for _, m := range tc.metrics {
				all = all && uses(p, m)
			}
			if !all {
				continue
			}
			if tc.extra != nil {
				if err := tc.extra(p); err != nil {
					problems = append(problems, fmt.Sprintf("%q: %v", p.Title, err))
					continue
				}
			}
			found = true
			break
		}
		if !found {
			t.Errorf("no %s panel showing %s %v", tc.typ, tc.what, problems)
		}
	}

	annotated := map[string]bool{}
	for _, a := range d.Annotations.List {
		for _, m := range []string{"rapport_rollbacks_total", "rapport_promotions_total"} {
			if strings.Contains(a.Expr, m) {
				annotated[m] = true
			}
		}
	}
	if len(annotated) != 2 {
		t.Errorf("want annotations for rollbacks and promotions, have %v", annotated)
	}
}

// TestDashboardExperimentFilters checks that the per-experiment panels are
// filtered by the namespace and experiment variables: a panel that reads an
// experiment's series without them would mix experiments.
func TestDashboardExperimentFilters(t *testing.T) {
	d, _ := loadDashboard(t)
	perExperiment := regexp.MustCompile(`rapport_(experiment|traffic_weight|satisfaction|variant_verdict|rollbacks|promotions|traffic_changes|feedback_responses)\w*`)
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			expr, _ := substituteVars(tg.Expr, variableSamples(d))
			parsed, err := promql.ParseExpr(expr)
			if err != nil {
				continue // reported by TestDashboardQueries
			}
			promparser.Inspect(parsed, func(n promparser.Node, _ []promparser.Node) error {
				vs, ok := n.(*promparser.VectorSelector)
				if !ok || !perExperiment.MatchString(vs.Name) {
					return nil
				}
				var hasNS, hasExp, hasJob bool
				for _, m := range vs.LabelMatchers {
					hasNS = hasNS || (m.Name == "namespace" && m.Value == "sample")
					hasExp = hasExp || (m.Name == "experiment" && m.Value == "sample")
					hasJob = hasJob || m.Name == "job"
				}
				// Panels over every experiment filter on the Rapport job instead.
				if !(hasNS && hasExp) && !hasJob {
					t.Errorf("panel %q query %s: %s filters on neither $namespace and $experiment nor $job", p.Title, tg.RefID, vs)
				}
				return nil
			})
		}
	}
}
