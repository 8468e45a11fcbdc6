package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/printers"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

var plain = RenderOptions{Now: fixedNow}

var ansiPattern = regexp.MustCompile(`\x1b\[[0-9;]*m`)

func TestProgressBar(t *testing.T) {
	for _, tc := range []struct {
		current, total, width int
		want                  string
	}{
		{0, 3, 10, "[░░░░░░░░░░]"},
		{1, 3, 10, "[███░░░░░░░]"},
		{2, 3, 10, "[██████░░░░]"},
		{3, 3, 10, "[██████████]"},
		{5, 3, 10, "[██████████]"}, // clamped
		{-1, 3, 10, "[░░░░░░░░░░]"},
		{1, 0, 4, "[░░░░]"},
		{1, 2, 5, "[██░░░]"},
	} {
		if got := ProgressBar(tc.current, tc.total, tc.width); got != tc.want {
			t.Errorf("ProgressBar(%d, %d, %d) = %s, want %s", tc.current, tc.total, tc.width, got, tc.want)
		}
	}
}

func TestStepLine(t *testing.T) {
	exp := newExperiment("shop", "checkout-redesign")
	for _, tc := range []struct {
		name string
		st   cxv1.CXExperimentStatus
		want string
	}{
		{"no status yet", cxv1.CXExperimentStatus{}, "Step 0/3 [░░░░░░░░░░] -  (waiting to start)"},
		{"running", cxv1.CXExperimentStatus{Phase: cxv1.PhaseProgressing, CurrentStep: 2, StepWeight: 25, StepStartedAt: at(12 * time.Minute)},
			"Step 2/3 [██████░░░░] 25%  (12m in step, min 30m)"},
		{"with maxDuration", cxv1.CXExperimentStatus{Phase: cxv1.PhaseProgressing, CurrentStep: 1, StepWeight: 5, StepStartedAt: at(90 * time.Second)},
			"Step 1/3 [███░░░░░░░] 5%  (90s in step, min 10m, max 2h)"},
		{"paused: the clock stops", cxv1.CXExperimentStatus{Phase: cxv1.PhasePaused, CurrentStep: 2, StepWeight: 25, StepStartedAt: at(40 * time.Minute), PausedAt: at(30 * time.Minute)},
			"Step 2/3 [██████░░░░] 25%  (10m in step, min 30m, paused 30m ago, the clock is stopped)"},
		{"ended", cxv1.CXExperimentStatus{Phase: cxv1.PhaseSucceeded, CurrentStep: 3, StepWeight: 50, CompletedAt: at(5 * time.Minute)},
			"Step 3/3 [██████████] 50%  (ended 5m ago)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := exp.DeepCopy()
			e.Status = tc.st
			if got := StepLine(e, fixedNow); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestHelpers(t *testing.T) {
	for in, want := range map[time.Duration]string{0: "0s", 90 * time.Second: "1m30s", 30 * time.Minute: "30m", time.Hour: "1h", 90 * time.Minute: "1h30m", 2*time.Hour + 5*time.Second: "2h0m5s"} {
		if got := specDuration(in); got != want {
			t.Errorf("specDuration(%v) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4200: "-4,200"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%d) = %q, want %q", in, got, want)
		}
	}
	for _, tc := range []struct{ score, iv, want string }{
		{"86.0", "[83.9, 88.1]", "86.0 ± 2.1"},
		{"86.0", "", "86.0"},
		{"", "[1, 2]", "-"},
		{"98.0", "[95.0, 100.0]", "98.0 ± 2.5"},
	} {
		if got := pm(tc.score, tc.iv); got != tc.want {
			t.Errorf("pm(%q, %q) = %q, want %q", tc.score, tc.iv, got, tc.want)
		}
	}
	if _, ok := parseInterval("83.9, 88.1"); ok {
		t.Error("parseInterval accepted an interval without brackets")
	}
	if got := percent(0.999); got != "99.9" {
		t.Errorf("percent(0.999) = %s", got)
	}
}

func listFixture() []cxv1.CXExperiment {
	running := newExperiment("shop", "checkout-redesign")
	running.Status = progressingStatus()
	pending := newExperiment("shop", "onboarding-tour")
	pending.Spec.Segments = nil
	pending.CreationTimestamp = *at(45 * time.Second)
	done := newExperiment("bank", "card-activation")
	done.Spec.Segments = []string{"enterprise", "new-customers", "returning", "mobile"}
	done.Status = succeededStatus()
	done.CreationTimestamp = *at(50 * time.Hour)
	items := []cxv1.CXExperiment{*running, *pending, *done}
	sortExperiments(items)
	return items
}

// TestListTable prints the table of `kubectl cx list` with cli-runtime's
// table printer, as the command does: default, -A and -o wide.
func TestListTable(t *testing.T) {
	for _, tc := range []struct {
		golden string
		items  []cxv1.CXExperiment
		opts   printers.PrintOptions
	}{
		{"list.golden", listFixture()[1:], printers.PrintOptions{}},
		{"list-all-namespaces.golden", listFixture(), printers.PrintOptions{WithNamespace: true}},
		{"list-wide.golden", listFixture(), printers.PrintOptions{WithNamespace: true, Wide: true}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			table, err := ExperimentTable(tc.items, fixedNow)
			must(t, err)
			var b bytes.Buffer
			must(t, printers.NewTablePrinter(tc.opts).PrintObj(table, &b))
			golden(t, tc.golden, b.Bytes())
		})
	}
}

func TestRenderStatus(t *testing.T) {
	paused := progressingStatus()
	paused.Phase, paused.PausedAt = cxv1.PhasePaused, at(5*time.Minute)
	// Paused: Ready says so; there is no Reconciling condition.
	paused.Conditions[0].Reason, paused.Conditions[0].Message = cxv1.ReasonPaused, "paused at step 2/3 by spec.paused"
	paused.Conditions = append(paused.Conditions[:1], paused.Conditions[2:]...)
	for _, tc := range []struct {
		golden string
		status cxv1.CXExperimentStatus
		events bool
	}{
		{"status-progressing.golden", progressingStatus(), true},
		{"status-paused.golden", paused, false},
		{"status-pending.golden", cxv1.CXExperimentStatus{}, false},
		{"status-succeeded.golden", succeededStatus(), true},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			exp := newExperiment("shop", "checkout-redesign")
			exp.Status = tc.status
			evs := progressingEvents()
			if tc.status.Phase == cxv1.PhaseSucceeded {
				evs = succeededEvents()
			}
			sortEvents(evs)
			if !tc.events {
				evs = nil
			}
			var b bytes.Buffer
			must(t, RenderStatus(&b, exp, evs, plain))
			if bytes.Contains(b.Bytes(), []byte("\x1b[")) {
				t.Error("colour codes without colour")
			}
			golden(t, tc.golden, b.Bytes())
		})
	}
}

func TestColour(t *testing.T) {
	exp := newExperiment("shop", "checkout-redesign")
	exp.Status = progressingStatus()
	var b bytes.Buffer
	must(t, RenderStatus(&b, exp, nil, RenderOptions{Now: fixedNow, Color: true}))
	out := b.String()
	for _, want := range []string{ansiGreen + "NonInferior" + ansiReset, ansiRed + "RolledBack" + ansiReset, ansiCyan + "Progressing" + ansiReset} {
		if !strings.Contains(out, want) {
			t.Errorf("coloured status lacks %q", want)
		}
	}
	// Columns stay aligned: the colour codes do not count towards widths.
	var p bytes.Buffer
	must(t, RenderStatus(&p, exp, nil, plain))
	if stripped := ansiPattern.ReplaceAllString(out, ""); stripped != p.String() {
		t.Errorf("coloured output without its colour codes differs from the plain output:\n%s\n---\n%s", stripped, p.String())
	}

	// The decision: a terminal and NO_COLOR unset.
	for _, tc := range []struct {
		tty     bool
		noColor string
		want    bool
	}{{true, "", true}, {true, "1", false}, {false, "", false}} {
		o := &Options{IOStreams: testStreams(nil, nil), IsTerminal: func(io.Writer) bool { return tc.tty }, Getenv: func(k string) string {
			if k == "NO_COLOR" {
				return tc.noColor
			}
			return ""
		}, Now: func() time.Time { return fixedNow }}
		if got := o.color(); got != tc.want {
			t.Errorf("tty=%v NO_COLOR=%q: colour %v, want %v", tc.tty, tc.noColor, got, tc.want)
		}
	}
}

func reportFixtures() map[string]*cxv1.CXExperiment {
	succeeded := newExperiment("shop", "checkout-redesign")
	succeeded.Status = succeededStatus()

	rolledBack := newExperiment("shop", "checkout-redesign")
	rolledBack.Spec.Satisfaction.Minimum = ptr("70")
	rolledBack.Status = progressingStatus()
	rolledBack.Status.Phase, rolledBack.Status.CompletedAt = cxv1.PhaseRolledBack, at(3*time.Minute)
	rolledBack.Status.Run = 2
	for i := range rolledBack.Status.Segments {
		for j := range rolledBack.Status.Segments[i].Variants {
			v := &rolledBack.Status.Segments[i].Variants[j]
			switch v.State {
			case cxv1.StateActive:
				v.State, v.Weight = cxv1.StateRolledBack, 0
				rolledBack.Status.Rollbacks = append(rolledBack.Status.Rollbacks, cxv1.Rollback{Variant: v.Name, Segment: rolledBack.Status.Segments[i].Name,
					Reason: cxv1.RollbackAborted, At: *at(3 * time.Minute), Step: 2, Responses: v.Responses, Evidence: "aborted by the cx.rapport.dev/abort annotation"})
			case cxv1.StateControl:
				v.Weight = 100
			}
		}
	}
	return map[string]*cxv1.CXExperiment{"succeeded": succeeded, "rolledback": rolledBack}
}

func reportEvents(name string) []eventsv1.Event {
	if name == "succeeded" {
		return succeededEvents()
	}
	return append(progressingEvents(),
		event("e4", "Warning", "Aborted", "aborted at step 2/3: 3 variant(s) rolled back; all traffic on the control", 3*time.Minute))
}

func TestReport(t *testing.T) {
	for name, exp := range reportFixtures() {
		t.Run(name, func(t *testing.T) {
			r := BuildReport(exp, reportEvents(name), fixedNow)
			var md bytes.Buffer
			must(t, RenderReportMarkdown(&md, r))
			golden(t, "report-"+name+".md", md.Bytes())

			var js bytes.Buffer
			if err := writeJSONDocument(&js, r); err != nil {
				t.Fatal(err)
			}
			golden(t, "report-"+name+".json", js.Bytes())

			var back Report
			dec := json.NewDecoder(&js)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&back); err != nil {
				t.Fatalf("the JSON report does not decode into Report: %v", err)
			}
			if !reflect.DeepEqual(back, r) {
				t.Errorf("JSON round trip changed the report:\n%+v\n%+v", back, r)
			}
		})
	}
}

func TestReportContent(t *testing.T) {
	r := BuildReport(reportFixtures()["succeeded"], succeededEvents(), fixedNow)
	if r.APIVersion != ReportAPIVersion || r.Kind != ReportKind {
		t.Errorf("apiVersion/kind = %s/%s", r.APIVersion, r.Kind)
	}
	if got := r.Decision.Segments; len(got) != 2 || got[0].Serves != "one-page" || !got[0].Promoted || got[1].Serves != "control" || got[1].Promoted {
		t.Errorf("segment decisions: %+v", got)
	}
	if len(r.Decision.Rollbacks) != 2 || r.Decision.Rollbacks[0].Evidence != expressEvidence || r.Decision.Rollbacks[1].Variant != "one-page" {
		t.Errorf("rollbacks: %+v", r.Decision.Rollbacks)
	}
	if r.Settings.MaxDrop != 3 || r.Settings.Confidence != 95 || r.Settings.MinResponses != 100 || r.Settings.Metric != "CSAT" || r.Settings.SatisfiedAtOrAbove != 4 {
		t.Errorf("settings: %+v", r.Settings)
	}
	v := r.Results[0].Variants[1]
	if v.Score == nil || *v.Score != 87.3 || v.ScoreInterval == nil || *v.ScoreInterval != (Interval{85.8, 88.8}) ||
		v.DifferenceInterval == nil || *v.DifferenceInterval != (Interval{-0.7, 3.1}) || v.State != "Promoted" {
		t.Errorf("one-page in enterprise: %+v", v)
	}
	if !sort.SliceIsSorted(r.Timeline, func(i, j int) bool { return r.Timeline[i].At.Before(r.Timeline[j].At) }) {
		t.Error("timeline is not in order")
	}
	// Events and status timestamps are both in the timeline.
	var sources = map[string]int{}
	for _, e := range r.Timeline {
		sources[e.Source]++
	}
	if sources["event"] != 6 || sources["status"] != 5 { // started, 2 rollbacks, step 3, ended
		t.Errorf("timeline sources: %v", sources)
	}
}

// TestReportJSONFields pins the JSON field names: renaming one breaks
// scripts, so it needs a new ReportAPIVersion.
func TestReportJSONFields(t *testing.T) {
	r := BuildReport(reportFixtures()["succeeded"], progressingEvents(), fixedNow)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := []string{"apiVersion", "decision", "experiment", "generatedAt", "kind", "results", "segments", "settings", "timeline", "variants"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("top-level keys %v, want %v", keys, want)
	}
}

func TestRenderEmptyReport(t *testing.T) {
	exp := newExperiment("shop", "onboarding-tour")
	exp.Spec.Segments = nil
	r := BuildReport(exp, nil, fixedNow)
	var b bytes.Buffer
	must(t, RenderReportMarkdown(&b, r))
	for _, want := range []string{"Nothing happened yet.", "No measurements yet.", "Not decided yet (Pending, step 0/3).", "**Segments:** all"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report of a pending experiment lacks %q:\n%s", want, b.String())
		}
	}
	js, _ := json.Marshal(r)
	for _, want := range []string{`"timeline":[]`, `"results":[]`, `"rollbacks":[]`} {
		if !bytes.Contains(js, []byte(want)) {
			t.Errorf("JSON of an empty report lacks %s (lists are never null)", want)
		}
	}
}

func TestFilterEvents(t *testing.T) {
	exp := newExperiment("shop", "checkout-redesign")
	evs := progressingEvents()
	other := event("x1", "Normal", "Started", "other experiment", time.Minute)
	other.Regarding.Name = "other"
	old := event("x2", "Normal", "Started", "an earlier experiment of the same name", time.Minute)
	old.Regarding.UID = "not-the-same"
	pod := event("x3", "Normal", "Started", "a pod", time.Minute)
	pod.Regarding.Kind = "Pod"
	series := event("x4", "Warning", "ActionIgnored", "repeated", 3*time.Hour)
	series.Series = &eventsv1.EventSeries{Count: 3, LastObservedTime: metav1.NewMicroTime(fixedNow.Add(-time.Second))}
	got := filterEvents(append(evs, other, old, pod, series), exp)
	names := make([]string, 0, len(got))
	for _, e := range got {
		names = append(names, e.Name)
	}
	if want := []string{"e1", "e2", "e3", "x4"}; !reflect.DeepEqual(names, want) {
		t.Errorf("filtered events %v, want %v (oldest first, a series at its last observation)", names, want)
	}
	if got := lastEvents(got, 2); len(got) != 2 || got[1].Name != "x4" {
		t.Errorf("lastEvents kept %v", got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// failingWriter fails every write, like a closed pipe.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestRenderReportsWriteErrors(t *testing.T) {
	exp := newExperiment("shop", "checkout-redesign")
	exp.Status = progressingStatus()
	for name, err := range map[string]error{
		"status": RenderStatus(failingWriter{}, exp, nil, plain),
		"report": RenderReportMarkdown(failingWriter{}, BuildReport(exp, nil, fixedNow)),
	} {
		if err != io.ErrClosedPipe {
			t.Errorf("%s: error %v, want the write error", name, err)
		}
	}
}

// TestRenderStatusEpochsAndGuards: status shows each segment's epoch, a
// sample-ratio mismatch with its shares, and settings edited mid-run next
// to the settings the run is still judged by.
func TestRenderStatusEpochsAndGuards(t *testing.T) {
	exp := newExperiment("shop", "checkout-redesign")
	exp.Status = progressingStatus()
	rs, err := exp.Spec.Satisfaction.RunSettings()
	must(t, err)
	exp.Status.Settings = &rs
	exp.Spec.Satisfaction.MaxDrop = "5"
	exp.Status.Segments[0].Epoch = 3
	exp.Status.Segments[0].SampleRatio = &cxv1.SampleRatioStatus{Mismatch: true, Epoch: 3, Evidence: "8.1 of 6.9",
		Shares: "control 82.0% (expected 75.0%), one-page 18.0% (expected 25.0%)"}
	var b bytes.Buffer
	must(t, RenderStatus(&b, exp, nil, plain))
	out := b.String()
	for _, want := range []string{
		"(epoch 3)",
		"Sample-ratio mismatch: control 82.0% (expected 75.0%), one-page 18.0% (expected 25.0%) (epoch 3, evidence 8.1 of 6.9)",
		"max drop " + rs.MaxDrop + " points", // judged by the run's settings, not the edit
		"spec.satisfaction changed during this run (maxDrop " + rs.MaxDrop + " -> 5)",
		"kubectl cx retry checkout-redesign",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not show %q:\n%s", want, out)
		}
	}
}
