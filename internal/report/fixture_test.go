package report

import (
	"math/rand/v2"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/history"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// Fixture returns an experiment with two segments whose variant was rolled
// back in enterprise and promoted in new-customers, its history (a seeded
// run of 60 measurements) and its tally.
func fixture(minimum *string) Input {
	exp := &cxv1.CXExperiment{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-redesign", Namespace: "shop"},
		Spec: cxv1.CXExperimentSpec{
			Hypothesis: "One-page checkout keeps customers as satisfied",
			Touchpoint: "checkout",
			Variants: []cxv1.Variant{
				{Name: "control", Control: true, Service: &cxv1.ServiceRef{Name: "checkout-v1", Port: 8080}},
				{Name: "one-page", Service: &cxv1.ServiceRef{Name: "checkout-v2", Port: 8080}},
			},
			Segments: []string{"enterprise", "new-customers"},
			Steps:    []cxv1.Step{{Weight: 10}, {Weight: 50}},
			Satisfaction: cxv1.Satisfaction{Metric: cxv1.MetricCSAT, MaxDrop: "3", Confidence: "95", MinResponses: 100, Minimum: minimum,
				Source: cxv1.SatisfactionSource{Collector: &cxv1.CollectorSource{}}},
		},
	}
	rollbackAt := t0.Add(25 * time.Minute)
	end := t0.Add(59 * time.Minute)
	exp.Status = cxv1.CXExperimentStatus{Run: 1, Phase: cxv1.PhaseSucceeded, CurrentStep: 2,
		StartedAt: &metav1.Time{Time: t0}, CompletedAt: &metav1.Time{Time: end},
		Rollbacks: []cxv1.Rollback{{Segment: "enterprise", Variant: "one-page", Reason: cxv1.RollbackInferior, At: metav1.Time{Time: rollbackAt}, Step: 1, Responses: 310,
			Evidence: "difference -12.1 [-19.0, -5.2] vs control"}},
	}
	rng := rand.New(rand.NewPCG(7, 17))
	var h *history.History
	for i := range 60 {
		now := t0.Add(time.Duration(i) * time.Minute)
		st := cxv1.CXExperimentStatus{Run: 1, CurrentStep: 1 + int32(i/30)}
		for _, seg := range []string{"enterprise", "new-customers"} {
			n := int64(i * 12)
			rolledBack := seg == "enterprise" && !now.Before(rollbackAt)
			weight := int32(10)
			if i >= 30 {
				weight = 50
			}
			delta, verdict := 0.5, cxv1.VerdictInconclusive
			if seg == "enterprise" {
				delta = -12
			}
			width := 60 / (1 + float64(i)/3)
			d := delta + (rng.Float64()-0.5)*width/4
			if rolledBack {
				weight, verdict = 0, cxv1.VerdictInferior
			} else if seg == "new-customers" && i > 40 {
				verdict = cxv1.VerdictNonInferior
			}
			if i < 3 {
				verdict = cxv1.VerdictInsufficientData
			}
			st.Segments = append(st.Segments, cxv1.SegmentStatus{Name: seg, Epoch: 1 + int32(i/30), Variants: []cxv1.VariantStatus{
				{Name: "control", Weight: 100 - weight, Responses: 9 * n, Score: cxv1.FormatPoints(86 + rng.Float64())},
				{Name: "one-page", Weight: weight, Responses: n, Score: cxv1.FormatPoints(86 + d),
					Difference: cxv1.FormatPoints(d), DifferenceInterval: cxv1.FormatInterval(d-width/2, d+width/2), Verdict: verdict},
			}})
		}
		h = history.Append(h, exp.Name, &st, now)
	}
	exp.Status.Segments = []cxv1.SegmentStatus{{Name: "enterprise"}, {Name: "new-customers", Promoted: "one-page"}}
	tally := &cxv1.ResponseTally{Spec: cxv1.ResponseTallySpec{Experiment: exp.Name, Run: 1, ScoreMin: 1, Counts: []cxv1.TallyCount{
		{Segment: "enterprise", Variant: "control", Scores: []int64{40, 60, 120, 900, 1600}},
		{Segment: "enterprise", Variant: "one-page", Scores: []int64{30, 20, 40, 90, 130}},
		{Segment: "new-customers", Variant: "control", Scores: []int64{50, 70, 130, 1000, 1900}},
		{Segment: "new-customers", Variant: "one-page", Scores: []int64{10, 20, 30, 200, 450}},
	}}}
	return Input{Experiment: exp, History: h, Tally: tally, Decision: "Succeeded: new-customers serves one-page; enterprise keeps the control.", Now: end.Add(time.Minute)}
}
