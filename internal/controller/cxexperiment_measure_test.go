package controller

import (
	"testing"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/measure"
)

// csat returns counts on the 1..5 scale: n responses, a share satisfied
// (score 5), the rest dissatisfied (score 2).
func csat(n int64, satisfiedPct int64) []int64 {
	sat := n * satisfiedPct / 100
	return []int64{0, n - sat, 0, 0, sat}
}

func measureExperiment() *cxv1.CXExperiment {
	return &cxv1.CXExperiment{Spec: cxv1.CXExperimentSpec{Variants: []cxv1.Variant{{Name: "control", Control: true}, {Name: "one-page"}}}}
}

func settings(t *testing.T, minimum string) cxv1.SatisfactionSettings {
	t.Helper()
	s := cxv1.Satisfaction{Metric: cxv1.MetricCSAT, MaxDrop: "3", Confidence: "95", MinResponses: 100}
	if minimum != "" {
		s.Minimum = &minimum
	}
	set, err := s.Settings()
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestEvaluate(t *testing.T) {
	for _, tc := range []struct {
		name             string
		minimum          string
		control, variant []int64
		wantVerdict      cxv1.Verdict
		wantReason       cxv1.RollbackReason
		wantIntervals    bool
		wantShare        string
	}{
		{name: "too few responses", control: csat(50, 86), variant: csat(50, 86),
			wantVerdict: cxv1.VerdictInsufficientData, wantShare: "50.0"},
		{name: "a clear drop", control: csat(1000, 86), variant: csat(1000, 70),
			wantVerdict: cxv1.VerdictInferior, wantReason: cxv1.RollbackInferior, wantIntervals: true, wantShare: "50.0"},
		{name: "below the minimum, within the margin", minimum: "80", control: csat(3000, 72), variant: csat(1000, 71),
			wantVerdict: cxv1.VerdictInferior, wantReason: cxv1.RollbackBelowMinimum, wantIntervals: true, wantShare: "25.0"},
		{name: "as good as the control", control: csat(1500, 86), variant: csat(1500, 87),
			wantVerdict: cxv1.VerdictNonInferior, wantIntervals: true, wantShare: "50.0"},
		{name: "no data for the variant", control: csat(500, 86), variant: nil,
			wantVerdict: cxv1.VerdictInsufficientData, wantShare: "0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tallies := measure.Tallies{}
			tallies.Set(cxv1.AllSegment, "control", tc.control)
			if tc.variant != nil {
				tallies.Set(cxv1.AllSegment, "one-page", tc.variant)
			}
			judgements, _, segs, err := evaluate(settings(t, tc.minimum), measureExperiment(), measure.Result{Tallies: tallies})
			if err != nil {
				t.Fatal(err)
			}
			j := judgements[cxv1.AllSegment]["one-page"]
			if j.Verdict != tc.wantVerdict || (tc.wantReason != "" && j.Reason != tc.wantReason) {
				t.Fatalf("judgement %s (%s): %s; want %s (%s)", j.Verdict, j.Reason, j.Evidence, tc.wantVerdict, tc.wantReason)
			}
			f := segs[cxv1.AllSegment].variants["one-page"]
			if f.verdict != j.Verdict || f.message != j.Evidence {
				t.Errorf("status fields %+v disagree with the judgement %+v", f, j)
			}
			if f.share != tc.wantShare {
				t.Errorf("realizedShare %q, want %q", f.share, tc.wantShare)
			}
			if (f.scoreIv != "" && f.diffIv != "") != tc.wantIntervals {
				t.Errorf("intervals %q and %q; want them: %v", f.scoreIv, f.diffIv, tc.wantIntervals)
			}
			for _, iv := range []string{f.scoreIv, f.diffIv} {
				if iv == "" {
					continue
				}
				if _, _, err := cxv1.ParseInterval(iv); err != nil {
					t.Errorf("interval %q does not parse: %v", iv, err)
				}
			}
			c := segs[cxv1.AllSegment].variants["control"]
			if c.verdict != "" || c.diff != "" {
				t.Errorf("the control has a verdict or a difference: %+v", c)
			}
			if c.responses >= 100 && c.scoreIv == "" {
				t.Errorf("the control has %d responses but no interval", c.responses)
			}
		})
	}
}

func TestEvaluateFormatsPoints(t *testing.T) {
	tallies := measure.Tallies{}
	tallies.Set(cxv1.AllSegment, "control", csat(1000, 86))
	tallies.Set(cxv1.AllSegment, "one-page", csat(1000, 70))
	_, _, segs, err := evaluate(settings(t, ""), measureExperiment(), measure.Result{Tallies: tallies})
	if err != nil {
		t.Fatal(err)
	}
	f := segs[cxv1.AllSegment].variants["one-page"]
	if f.score != "70.0" || f.diff != "-16.0" || segs[cxv1.AllSegment].variants["control"].score != "86.0" {
		t.Fatalf("score %q, difference %q, control %q; want 70.0, -16.0, 86.0", f.score, f.diff, segs[cxv1.AllSegment].variants["control"].score)
	}
}

func TestJudgementsFromStatus(t *testing.T) {
	st := &cxv1.CXExperimentStatus{Segments: []cxv1.SegmentStatus{{Name: "enterprise", Variants: []cxv1.VariantStatus{
		{Name: "control", State: cxv1.StateControl, Score: "86.0"},
		{Name: "one-page", State: cxv1.StateActive, Verdict: cxv1.VerdictNonInferior, Score: "87.1", Responses: 598, Message: "non-inferior"},
		{Name: "express", State: cxv1.StateActive, Verdict: cxv1.VerdictInsufficientData},
	}}}}
	j, _ := judgementsFromStatus(st)
	if _, ok := j["enterprise"]["control"]; ok {
		t.Error("the control has no verdict to judge")
	}
	if got := j["enterprise"]["one-page"]; got.Verdict != cxv1.VerdictNonInferior || got.Score != 87.1 || got.Responses != 598 || got.Evidence != "non-inferior" {
		t.Errorf("one-page: %+v", got)
	}
	if got := j["enterprise"]["express"]; got.Score != 0 {
		t.Errorf("express without a score ranks last (0): %+v", got)
	}
}
