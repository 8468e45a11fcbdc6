package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with the current output")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (rerun with -update if the change is intended)\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

// fixedNow is the clock of every renderer test.
var fixedNow = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

func at(ago time.Duration) *metav1.Time {
	t := metav1.NewTime(fixedNow.Add(-ago))
	return &t
}

func ptr[T any](v T) *T { return &v }

// newExperiment is the spec of the checkout experiment used throughout:
// three variants, two segments, three steps.
func newExperiment(namespace, name string) *cxv1.CXExperiment {
	return &cxv1.CXExperiment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, UID: "0b7c5a4e-1111-4c2a-9d7e-5f0e8a1b2c3d",
			CreationTimestamp: *at(3 * time.Hour)},
		Spec: cxv1.CXExperimentSpec{
			Hypothesis: "One-page checkout keeps customers as satisfied with fewer steps",
			Touchpoint: "checkout",
			Variants: []cxv1.Variant{
				{Name: "control", Control: true, Service: &cxv1.ServiceRef{Name: "checkout-v1", Port: 8080}},
				{Name: "one-page", Service: &cxv1.ServiceRef{Name: "checkout-v2", Port: 8080}},
				{Name: "express", Service: &cxv1.ServiceRef{Name: "checkout-v3", Port: 8080}},
			},
			Segments: []string{"enterprise", "new-customers"},
			Traffic:  cxv1.Traffic{GatewayAPI: &cxv1.GatewayAPITraffic{HTTPRoute: "checkout"}},
			Steps: []cxv1.Step{
				{Weight: 5, MinDuration: metav1.Duration{Duration: 10 * time.Minute}, MaxDuration: &metav1.Duration{Duration: 2 * time.Hour}},
				{Weight: 25, MinDuration: metav1.Duration{Duration: 30 * time.Minute}},
				{Weight: 50, MinDuration: metav1.Duration{Duration: time.Hour}},
			},
			Promotion:      cxv1.PromotionAutomatic,
			OnInconclusive: cxv1.InconclusiveRollback,
			Satisfaction: cxv1.Satisfaction{
				Metric: cxv1.MetricCSAT, MaxDrop: "3", Confidence: "95", MinResponses: 100,
				Source:   cxv1.SatisfactionSource{Collector: &cxv1.CollectorSource{}},
				Interval: metav1.Duration{Duration: 30 * time.Second},
			},
		},
	}
}

const expressEvidence = "CSAT 74.1 [70.2, 78.0] vs control 86.0: difference -11.9 [-16.8, -7.0] lies below -3 (max drop): inferior after 412 responses"

// progressingStatus is step 2 of 3, 12 minutes in: express was rolled back
// for new customers, everything else runs.
func progressingStatus() cxv1.CXExperimentStatus {
	return cxv1.CXExperimentStatus{
		Phase: cxv1.PhaseProgressing, Run: 1, CurrentStep: 2, StepWeight: 25,
		StartedAt: at(2 * time.Hour), StepStartedAt: at(12 * time.Minute), MeasuredAt: at(30 * time.Second),
		Segments: []cxv1.SegmentStatus{
			{Name: "enterprise", Variants: []cxv1.VariantStatus{
				{Name: "control", State: cxv1.StateControl, Weight: 50, Responses: 1204, RealizedShare: "50.2", Score: "86.0", ScoreInterval: "[83.9, 88.1]"},
				{Name: "one-page", State: cxv1.StateActive, Weight: 25, Responses: 598, RealizedShare: "24.9", Score: "87.1", ScoreInterval: "[83.8, 90.4]",
					Difference: "1.1", DifferenceInterval: "[-2.8, 5.0]", Verdict: cxv1.VerdictNonInferior,
					Message: "CSAT 87.1 [83.8, 90.4] vs control 86.0: difference 1.1 [-2.8, 5.0] lies above -3 (max drop): non-inferior after 598 responses"},
				{Name: "express", State: cxv1.StateActive, Weight: 25, Responses: 597, RealizedShare: "24.9", Score: "84.2", ScoreInterval: "[80.6, 87.8]",
					Difference: "-1.8", DifferenceInterval: "[-6.0, 2.4]", Verdict: cxv1.VerdictInconclusive,
					Message: "CSAT 84.2 [80.6, 87.8] vs control 86.0: difference -1.8 [-6.0, 2.4] straddles -3 (max drop): inconclusive after 597 responses"},
			}},
			{Name: "new-customers", Variants: []cxv1.VariantStatus{
				{Name: "control", State: cxv1.StateControl, Weight: 75, Responses: 2310, RealizedShare: "70.1", Score: "86.0", ScoreInterval: "[84.4, 87.6]"},
				{Name: "one-page", State: cxv1.StateActive, Weight: 25, Responses: 573, RealizedShare: "17.4", Score: "85.3", ScoreInterval: "[81.7, 88.9]",
					Difference: "-0.7", DifferenceInterval: "[-4.6, 3.2]", Verdict: cxv1.VerdictInconclusive,
					Message: "CSAT 85.3 [81.7, 88.9] vs control 86.0: difference -0.7 [-4.6, 3.2] straddles -3 (max drop): inconclusive after 573 responses"},
				{Name: "express", State: cxv1.StateRolledBack, Weight: 0, Responses: 412, RealizedShare: "12.5", Score: "74.1", ScoreInterval: "[70.2, 78.0]",
					Difference: "-11.9", DifferenceInterval: "[-16.8, -7.0]", Verdict: cxv1.VerdictInferior, Message: expressEvidence},
			}},
		},
		Rollbacks: []cxv1.Rollback{
			{Variant: "express", Segment: "new-customers", Reason: cxv1.RollbackInferior, At: *at(95 * time.Minute), Step: 1, Responses: 412, Evidence: expressEvidence},
		},
		Traffic: cxv1.TrafficStatus{ChildRoute: "checkout-redesign-rapport"},
		Summary: cxv1.Summary{Control: "86.0", Variants: "one-page 86.1 (+0.1), express 80.9 (-5.1)"},
		Conditions: []metav1.Condition{
			{Type: cxv1.ConditionReady, Status: metav1.ConditionTrue, Reason: cxv1.ReasonStepRunning, Message: "step 2/3 holds for its minDuration 30m0s, until 2026-05-04T10:18:00Z", LastTransitionTime: *at(2 * time.Hour)},
			{Type: cxv1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: cxv1.ReasonStepRunning, Message: "step 2/3 holds for its minDuration 30m0s, until 2026-05-04T10:18:00Z", LastTransitionTime: *at(2 * time.Hour)},
			{Type: cxv1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: cxv1.ReasonPartialRollback, Message: "1 rollback(s); last: express in new-customers (Inferior): " + expressEvidence, LastTransitionTime: *at(95 * time.Minute)},
		},
	}
}

// succeededStatus: all three steps passed; one-page was promoted in
// enterprise (express retired there); both variants were rolled back for new
// customers, who keep the control.
func succeededStatus() cxv1.CXExperimentStatus {
	onePageEvidence := "CSAT 79.4 [75.9, 82.9] vs control 86.1: difference -6.7 [-10.5, -3.2] lies below -3 (max drop): inferior after 690 responses"
	return cxv1.CXExperimentStatus{
		Phase: cxv1.PhaseSucceeded, Run: 1, CurrentStep: 3, StepWeight: 50,
		StartedAt: at(150 * time.Minute), StepStartedAt: at(100 * time.Minute), CompletedAt: at(5 * time.Minute), MeasuredAt: at(5 * time.Minute),
		Segments: []cxv1.SegmentStatus{
			{Name: "enterprise", Promoted: "one-page", Variants: []cxv1.VariantStatus{
				{Name: "control", State: cxv1.StateControl, Weight: 0, Responses: 4630, RealizedShare: "48.9", Score: "86.1", ScoreInterval: "[85.0, 87.2]"},
				{Name: "one-page", State: cxv1.StatePromoted, Weight: 100, Responses: 2431, RealizedShare: "25.7", Score: "87.3", ScoreInterval: "[85.8, 88.8]",
					Difference: "1.2", DifferenceInterval: "[-0.7, 3.1]", Verdict: cxv1.VerdictNonInferior,
					Message: "CSAT 87.3 [85.8, 88.8] vs control 86.1: difference 1.2 [-0.7, 3.1] lies above -3 (max drop): non-inferior after 2431 responses"},
				{Name: "express", State: cxv1.StateRetired, Weight: 0, Responses: 2402, RealizedShare: "25.4", Score: "85.0", ScoreInterval: "[83.4, 86.6]",
					Difference: "-1.1", DifferenceInterval: "[-2.9, 0.7]", Verdict: cxv1.VerdictNonInferior,
					Message: "CSAT 85.0 [83.4, 86.6] vs control 86.1: difference -1.1 [-2.9, 0.7] lies above -3 (max drop): non-inferior after 2402 responses"},
			}},
			{Name: "new-customers", Variants: []cxv1.VariantStatus{
				{Name: "control", State: cxv1.StateControl, Weight: 100, Responses: 3105, RealizedShare: "73.4", Score: "86.1", ScoreInterval: "[84.8, 87.4]"},
				{Name: "one-page", State: cxv1.StateRolledBack, Weight: 0, Responses: 690, RealizedShare: "16.3", Score: "79.4", ScoreInterval: "[75.9, 82.9]",
					Difference: "-6.7", DifferenceInterval: "[-10.5, -3.2]", Verdict: cxv1.VerdictInferior, Message: onePageEvidence},
				{Name: "express", State: cxv1.StateRolledBack, Weight: 0, Responses: 412, RealizedShare: "9.7", Score: "74.1", ScoreInterval: "[70.2, 78.0]",
					Difference: "-11.9", DifferenceInterval: "[-16.8, -7.0]", Verdict: cxv1.VerdictInferior, Message: expressEvidence},
			}},
		},
		Rollbacks: []cxv1.Rollback{
			{Variant: "express", Segment: "new-customers", Reason: cxv1.RollbackInferior, At: *at(140 * time.Minute), Step: 1, Responses: 412, Evidence: expressEvidence},
			{Variant: "one-page", Segment: "new-customers", Reason: cxv1.RollbackInferior, At: *at(115 * time.Minute), Step: 2, Responses: 690, Evidence: onePageEvidence},
		},
		Traffic:        cxv1.TrafficStatus{ChildRoute: "checkout-redesign-rapport"},
		HandledActions: cxv1.HandledActions{},
		Summary:        cxv1.Summary{Control: "86.1", Variants: "one-page 85.9 (-0.2), express 83.9 (-2.2)"},
		Conditions: []metav1.Condition{
			{Type: cxv1.ConditionReady, Status: metav1.ConditionTrue, Reason: cxv1.ReasonSucceeded, Message: "promoted: enterprise: control 0%, one-page 100%, express 0%; new-customers: control 100%, one-page 0%, express 0%", LastTransitionTime: *at(5 * time.Minute)},
			{Type: cxv1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: cxv1.ReasonPartialRollback, Message: "2 rollback(s); last: one-page in new-customers (Inferior): " + onePageEvidence, LastTransitionTime: *at(115 * time.Minute)},
		},
	}
}

func succeededEvents() []eventsv1.Event {
	return []eventsv1.Event{
		event("s1", "Normal", "Started", "run 1 started: step 1/3 sends 5% of each segment's traffic to each of one-page, express (segments: enterprise, new-customers)", 150*time.Minute),
		event("s2", "Warning", "VariantRolledBack", "express rolled back in segment new-customers at step 1 (Inferior after 412 responses): "+expressEvidence, 140*time.Minute),
		event("s3", "Normal", "StepAdvanced", "step 2/3: 25% of each segment's traffic to each active variant (every active variant is non-inferior in every segment)", 135*time.Minute),
		event("s4", "Warning", "VariantRolledBack", "one-page rolled back in segment new-customers at step 2 (Inferior after 690 responses)", 115*time.Minute),
		event("s5", "Normal", "StepAdvanced", "step 3/3: 50% of each segment's traffic to each active variant (every active variant is non-inferior in every segment)", 100*time.Minute),
		event("s6", "Normal", "Promoted", "promoted automatically after the last step: enterprise -> one-page (CSAT 87.3 [85.8, 88.8] vs control 86.1: difference 1.2 [-0.7, 3.1] lies above -3 (max drop): non-inferior after 2431 responses); new-customers -> control (no variant qualified)", 5*time.Minute),
	}
}

func event(name, typ, reason, note string, ago time.Duration) eventsv1.Event {
	return eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: name, Namespace: "shop"},
		EventTime:           metav1.NewMicroTime(fixedNow.Add(-ago)),
		ReportingController: "rapport", ReportingInstance: "rapport-0",
		Action: reason, Reason: reason, Type: typ, Note: note,
		Regarding: corev1.ObjectReference{Kind: "CXExperiment", APIVersion: "cx.rapport.dev/v1alpha1", Namespace: "shop", Name: "checkout-redesign"},
	}
}

func progressingEvents() []eventsv1.Event {
	return []eventsv1.Event{
		event("e3", "Normal", "StepAdvanced", "step 2/3: 25% of each segment's traffic to each active variant (every active variant is non-inferior in every segment)", 12*time.Minute),
		event("e1", "Normal", "Started", "run 1 started: step 1/3 sends 5% of each segment's traffic to each of one-page, express (segments: enterprise, new-customers)", 2*time.Hour),
		event("e2", "Warning", "VariantRolledBack", "express rolled back in segment new-customers at step 1 (Inferior after 412 responses):\n"+expressEvidence, 95*time.Minute),
	}
}
