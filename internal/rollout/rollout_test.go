package rollout

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func spec(segments []string, variants ...string) *cxv1.CXExperimentSpec {
	s := &cxv1.CXExperimentSpec{
		Variants: []cxv1.Variant{{Name: "control", Control: true}},
		Segments: segments,
		Steps: []cxv1.Step{
			{Weight: 5, MinDuration: metav1.Duration{Duration: 10 * time.Minute}, MaxDuration: dur(2 * time.Hour)},
			{Weight: 25, MinDuration: metav1.Duration{Duration: 30 * time.Minute}},
			{Weight: 50, MinDuration: metav1.Duration{Duration: time.Hour}},
		},
		Promotion:      cxv1.PromotionAutomatic,
		OnInconclusive: cxv1.InconclusiveRollback,
	}
	for _, v := range variants {
		s.Variants = append(s.Variants, cxv1.Variant{Name: v})
	}
	return s
}

func TestDesiredWeights(t *testing.T) {
	two := spec([]string{"enterprise", "new"}, "a", "b")
	tests := []struct {
		name   string
		spec   *cxv1.CXExperimentSpec
		status cxv1.CXExperimentStatus
		want   map[string]map[string]int32
	}{
		{
			name:   "pending routes everything to control",
			spec:   two,
			status: cxv1.CXExperimentStatus{Phase: cxv1.PhasePending},
			want: map[string]map[string]int32{
				"enterprise": {"control": 100, "a": 0, "b": 0},
				"new":        {"control": 100, "a": 0, "b": 0},
			},
		},
		{
			name: "step weight to each active variant, control keeps the rest",
			spec: two,
			status: cxv1.CXExperimentStatus{Phase: cxv1.PhaseProgressing, CurrentStep: 2, Segments: []cxv1.SegmentStatus{
				{Name: "enterprise", Variants: []cxv1.VariantStatus{{Name: "control", State: cxv1.StateControl}, {Name: "a", State: cxv1.StateActive}, {Name: "b", State: cxv1.StateActive}}},
				{Name: "new", Variants: []cxv1.VariantStatus{{Name: "control", State: cxv1.StateControl}, {Name: "a", State: cxv1.StateRolledBack}, {Name: "b", State: cxv1.StateActive}}},
			}},
			want: map[string]map[string]int32{
				"enterprise": {"control": 50, "a": 25, "b": 25},
				"new":        {"control": 75, "a": 0, "b": 25},
			},
		},
		{
			name: "paused keeps the step's weights",
			spec: two,
			status: cxv1.CXExperimentStatus{Phase: cxv1.PhasePaused, CurrentStep: 1, Segments: []cxv1.SegmentStatus{
				{Name: "enterprise", Variants: []cxv1.VariantStatus{{Name: "control", State: cxv1.StateControl}, {Name: "a", State: cxv1.StateActive}, {Name: "b", State: cxv1.StateRolledBack}}},
			}},
			want: map[string]map[string]int32{
				"enterprise": {"control": 95, "a": 5, "b": 0},
				"new":        {"control": 100, "a": 0, "b": 0},
			},
		},
		{
			name: "promoted variant takes the whole segment",
			spec: two,
			status: cxv1.CXExperimentStatus{Phase: cxv1.PhaseSucceeded, CurrentStep: 3, Segments: []cxv1.SegmentStatus{
				{Name: "enterprise", Variants: []cxv1.VariantStatus{{Name: "control", State: cxv1.StateControl}, {Name: "a", State: cxv1.StatePromoted}, {Name: "b", State: cxv1.StateRetired}}},
				{Name: "new", Variants: []cxv1.VariantStatus{{Name: "control", State: cxv1.StateControl}, {Name: "a", State: cxv1.StateRetired}, {Name: "b", State: cxv1.StateRolledBack}}},
			}},
			want: map[string]map[string]int32{
				"enterprise": {"control": 0, "a": 100, "b": 0},
				"new":        {"control": 100, "a": 0, "b": 0},
			},
		},
		{
			name: "rolled back experiment routes to control whatever the states say",
			spec: spec(nil, "a"),
			status: cxv1.CXExperimentStatus{Phase: cxv1.PhaseRolledBack, CurrentStep: 2, Segments: []cxv1.SegmentStatus{
				{Name: "all", Variants: []cxv1.VariantStatus{{Name: "control", State: cxv1.StateControl}, {Name: "a", State: cxv1.StateActive}}},
			}},
			want: map[string]map[string]int32{"all": {"control": 100, "a": 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DesiredWeights(tt.spec, &tt.status)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("DesiredWeights() = %v, want %v", got, tt.want)
			}
		})
	}
}

// tick is one reconcile of a scenario.
type tick struct {
	at         time.Duration
	judgements Judgements
	breaches   map[string]map[string]string
	actions    Actions
	paused     bool
}

func nonInferior(score float64) Judgement {
	return Judgement{Verdict: cxv1.VerdictNonInferior, Responses: 400, Score: score, Evidence: fmt.Sprintf("CSAT %.1f vs control 86.0: non-inferior", score)}
}

var (
	inferior     = Judgement{Verdict: cxv1.VerdictInferior, Reason: cxv1.RollbackInferior, Responses: 412, Score: 74, Evidence: "CSAT 74.0 vs control 86.0: difference -12.0 [-16.8, -7.2] below -3"}
	inconclusive = Judgement{Verdict: cxv1.VerdictInconclusive, Responses: 150, Score: 84, Evidence: "CSAT 84.0 vs control 86.0: undecided"}
)

func all(j Judgement, segments ...string) Judgements {
	out := Judgements{}
	for _, s := range segments {
		out[s] = map[string]Judgement{"one-page": j}
	}
	return out
}

// runScenario drives Decide through the ticks, feeding each status back
// like the controller does, and returns a readable trace.
func runScenario(s *cxv1.CXExperimentSpec, ticks []tick) string {
	var b strings.Builder
	st := cxv1.CXExperimentStatus{}
	for _, tk := range ticks {
		spec := *s
		spec.Paused = tk.paused
		out := Decide(Input{Spec: &spec, Status: &st, Judgements: tk.judgements, Breaches: tk.breaches, Actions: tk.actions, Now: t0.Add(tk.at)})
		st = out.Status
		fmt.Fprintf(&b, "t=%-6s phase=%-11s step=%d weights=%s", tk.at, st.Phase, st.CurrentStep, formatWeights(&st))
		if out.RequeueAfter > 0 {
			fmt.Fprintf(&b, " requeue=%s", out.RequeueAfter)
		}
		if st.Waiting != "" {
			fmt.Fprintf(&b, " waiting=%s", st.Waiting)
		}
		b.WriteString("\n")
		for _, e := range out.Events {
			kind := "Normal"
			if e.Warning {
				kind = "Warning"
			}
			fmt.Fprintf(&b, "    %s %s: %s\n", kind, e.Reason, e.Message)
		}
	}
	for _, r := range st.Rollbacks {
		fmt.Fprintf(&b, "rollback: %s in %s at step %d, %s after %d responses\n", r.Variant, r.Segment, r.Step, r.Reason, r.Responses)
	}
	return b.String()
}

func formatWeights(st *cxv1.CXExperimentStatus) string {
	var parts []string
	for _, seg := range st.Segments {
		var vs []string
		for _, v := range seg.Variants {
			vs = append(vs, fmt.Sprintf("%s:%d(%s)", v.Name, v.Weight, v.State))
		}
		parts = append(parts, seg.Name+"{"+strings.Join(vs, " ")+"}")
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func TestScenarios(t *testing.T) {
	segs := []string{"enterprise", "new-customers"}
	manual := spec(segs, "one-page")
	manual.Promotion = cxv1.PromotionManual
	hold := spec(segs, "one-page")
	hold.OnInconclusive = cxv1.InconclusiveHold
	cont := spec(segs, "one-page")
	cont.OnInconclusive = cxv1.InconclusiveContinue
	cont.Steps[1].MaxDuration = dur(time.Hour)
	good := all(nonInferior(85.5), segs...)

	scenarios := []struct {
		name  string
		spec  *cxv1.CXExperimentSpec
		ticks []tick
	}{
		{"happy-path", spec(segs, "one-page"), []tick{
			{at: 0},
			{at: 5 * time.Minute, judgements: good},
			{at: 10 * time.Minute, judgements: good},
			{at: 25 * time.Minute, judgements: good},
			{at: 40 * time.Minute, judgements: good},
			{at: 100 * time.Minute, judgements: good},
		}},
		{"rollback-one-segment", spec(segs, "one-page"), []tick{
			{at: 0},
			{at: 3 * time.Minute, judgements: Judgements{"enterprise": {"one-page": inferior}, "new-customers": {"one-page": inconclusive}}},
			{at: 10 * time.Minute, judgements: Judgements{"new-customers": {"one-page": nonInferior(86.5)}}},
			{at: 40 * time.Minute, judgements: Judgements{"new-customers": {"one-page": nonInferior(86.5)}}},
			{at: 100 * time.Minute, judgements: Judgements{"new-customers": {"one-page": nonInferior(86.5)}}},
		}},
		{"rollback-all-segments", spec(segs, "one-page"), []tick{
			{at: 0},
			{at: 2 * time.Minute, judgements: Judgements{"enterprise": {"one-page": inferior}}},
			{at: 4 * time.Minute, judgements: all(inferior, segs...)},
			{at: 5 * time.Minute, judgements: all(inferior, segs...)},
		}},
		{"guardrail-breach", spec(nil, "one-page"), []tick{
			{at: 0},
			{at: time.Minute, judgements: all(inconclusive, "all"), breaches: map[string]map[string]string{"all": {"one-page": "error-rate 0.034 > max 0.01"}}},
		}},
		{"pause-resume", spec(segs, "one-page"), []tick{
			{at: 0},
			{at: 5 * time.Minute, judgements: good, paused: true},
			{at: 30 * time.Minute, judgements: Judgements{"enterprise": {"one-page": inferior}, "new-customers": {"one-page": nonInferior(86)}}, paused: true},
			{at: 60 * time.Minute, judgements: Judgements{"new-customers": {"one-page": nonInferior(86)}}},
			{at: 65 * time.Minute, judgements: Judgements{"new-customers": {"one-page": nonInferior(86)}}},
		}},
		{"manual-promotion", manual, []tick{
			{at: 0},
			{at: 10 * time.Minute, judgements: good},
			{at: 40 * time.Minute, judgements: good},
			{at: 100 * time.Minute, judgements: good},
			{at: 110 * time.Minute, judgements: good},
			{at: 120 * time.Minute, judgements: good, actions: Actions{Promote: "2026-11-23T12:00:00Z"}},
		}},
		{"inconclusive-rollback", spec(segs, "one-page"), []tick{
			{at: 0},
			{at: 90 * time.Minute, judgements: Judgements{"enterprise": {"one-page": inconclusive}, "new-customers": {"one-page": nonInferior(86)}}},
			{at: 120 * time.Minute, judgements: Judgements{"enterprise": {"one-page": inconclusive}, "new-customers": {"one-page": nonInferior(86)}}},
		}},
		{"inconclusive-hold", hold, []tick{
			{at: 0},
			{at: 120 * time.Minute, judgements: all(inconclusive, segs...)},
			{at: 130 * time.Minute, judgements: all(inconclusive, segs...)},
			{at: 140 * time.Minute, judgements: good},
		}},
		{"inconclusive-continue", cont, []tick{
			{at: 0},
			{at: 120 * time.Minute, judgements: all(inconclusive, segs...)},
			{at: 180 * time.Minute, judgements: all(inconclusive, segs...)},
			{at: 240 * time.Minute, judgements: all(inconclusive, segs...)},
			{at: 250 * time.Minute, judgements: all(inconclusive, segs...)},
			{at: 260 * time.Minute, judgements: good},
		}},
		{"abort-then-retry", spec(segs, "one-page"), []tick{
			{at: 0},
			{at: 10 * time.Minute, judgements: good},
			{at: 15 * time.Minute, judgements: good, actions: Actions{Abort: "a1"}},
			{at: 16 * time.Minute, actions: Actions{Abort: "a1", Promote: "p1"}},
			{at: 20 * time.Minute, actions: Actions{Abort: "a1", Promote: "p1", Retry: "r1"}},
			{at: 21 * time.Minute, actions: Actions{Abort: "a1", Promote: "p1", Retry: "r1"}},
		}},
		{"retry-while-running-is-ignored", spec(nil, "one-page"), []tick{
			{at: 0},
			{at: time.Minute, actions: Actions{Retry: "r1"}},
		}},
		{"three-variants-best-promoted", spec([]string{"enterprise"}, "one-page", "two-page"), []tick{
			{at: 0},
			{at: 10 * time.Minute, judgements: Judgements{"enterprise": {"one-page": nonInferior(85), "two-page": nonInferior(87)}}},
			{at: 40 * time.Minute, judgements: Judgements{"enterprise": {"one-page": nonInferior(85), "two-page": nonInferior(87)}}},
			{at: 100 * time.Minute, judgements: Judgements{"enterprise": {"one-page": nonInferior(85), "two-page": nonInferior(87)}}},
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			got := runScenario(sc.spec, sc.ticks)
			path := filepath.Join("testdata", sc.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read %s (run `go test ./internal/rollout -update` to create it): %v", path, err)
			}
			if got != string(want) {
				t.Errorf("scenario %s differs from %s:\n--- got\n%s\n--- want\n%s", sc.name, path, got, want)
			}
		})
	}
}

func TestDecideDoesNotModifyInput(t *testing.T) {
	s := spec([]string{"enterprise"}, "one-page")
	st := cxv1.CXExperimentStatus{}
	out := Decide(Input{Spec: s, Status: &st, Now: t0})
	if st.Phase != "" || len(st.Segments) != 0 {
		t.Fatalf("input status changed: %+v", st)
	}
	if out.Status.Phase != cxv1.PhaseProgressing {
		t.Fatalf("phase = %s, want Progressing", out.Status.Phase)
	}
}

func TestDecideIsIdempotent(t *testing.T) {
	s := spec([]string{"enterprise"}, "one-page")
	st := Decide(Input{Spec: s, Status: &cxv1.CXExperimentStatus{}, Now: t0}).Status
	j := Judgements{"enterprise": {"one-page": nonInferior(86)}}
	first := Decide(Input{Spec: s, Status: &st, Judgements: j, Now: t0.Add(5 * time.Minute)})
	second := Decide(Input{Spec: s, Status: &first.Status, Judgements: j, Now: t0.Add(5 * time.Minute)})
	if len(second.Events) != 0 {
		t.Fatalf("a repeated reconcile emitted events: %+v", second.Events)
	}
	if !reflect.DeepEqual(first.Status, second.Status) {
		t.Fatalf("a repeated reconcile changed the status:\n%+v\n%+v", first.Status, second.Status)
	}
}

// TestStepsShortened: spec.steps may be edited while running; with fewer
// steps than the current one, the experiment continues at the new last step
// (it used to index past the end of spec.steps).
func TestStepsShortened(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	s := spec(nil, "one-page")
	out := Decide(Input{Spec: s, Status: &cxv1.CXExperimentStatus{}, Now: t0})
	st := out.Status
	st.CurrentStep = 3

	short := s.DeepCopy()
	short.Steps = short.Steps[:2]
	now := t0.Add(time.Hour)
	out = Decide(Input{Spec: short, Status: &st, Judgements: all(inconclusive, cxv1.AllSegment), Now: now})
	if out.Status.CurrentStep != 2 {
		t.Fatalf("current step %d; want 2, the new last step", out.Status.CurrentStep)
	}
	if !out.Status.StepStartedAt.Time.Equal(now) {
		t.Errorf("the step's clock starts at %v; want now (%v)", out.Status.StepStartedAt, now)
	}
	if out.Status.StepWeight != 25 {
		t.Errorf("step weight %d; want 25", out.Status.StepWeight)
	}
	var found bool
	for _, e := range out.Events {
		if e.Reason == EventStepsChanged && e.Warning {
			found = true
		}
	}
	if !found {
		t.Errorf("no %s warning event in %+v", EventStepsChanged, out.Events)
	}
	if again := Decide(Input{Spec: short, Status: &out.Status, Judgements: all(inconclusive, cxv1.AllSegment), Now: now}); len(again.Events) != 0 {
		t.Errorf("the change is announced once; got %+v", again.Events)
	}
}
