package notify

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

var t0 = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

func mt(d time.Duration) metav1.Time { return metav1.NewTime(t0.Add(d)) }

// experiment is a two-segment experiment (control, one-page, express).
func experiment() *cxv1.CXExperiment {
	return &cxv1.CXExperiment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout", UID: "uid-1"},
		Spec: cxv1.CXExperimentSpec{
			Variants: []cxv1.Variant{{Name: "control", Control: true}, {Name: "one-page"}, {Name: "express"}},
			Segments: []string{"enterprise", "new-customers"},
			Steps:    []cxv1.Step{{Weight: 10}, {Weight: 25}, {Weight: 50}},
		},
		Status: cxv1.CXExperimentStatus{Phase: cxv1.PhaseProgressing, Run: 1, CurrentStep: 2},
	}
}

const evidence = "CSAT 74.1 [70.2, 78.0] vs control 86.0: difference -11.9 [-16.8, -7.0] lies below -3 (max drop): inferior after 412 responses"

func rollback(seg, variant string, at time.Duration) cxv1.Rollback {
	return cxv1.Rollback{Segment: seg, Variant: variant, Reason: cxv1.RollbackInferior, At: mt(at), Step: 1, Responses: 412, Evidence: evidence}
}

func TestEvents(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*cxv1.CXExperiment)
		want   []Trigger
		check  func(t *testing.T, evs []Event)
	}{
		{"nothing to tell while running", func(*cxv1.CXExperiment) {}, nil, nil},
		{"one event per rollback, with the evidence", func(e *cxv1.CXExperiment) {
			e.Status.Rollbacks = []cxv1.Rollback{rollback("new-customers", "express", 0), rollback("enterprise", "express", time.Minute)}
		}, []Trigger{TriggerRolledBack, TriggerRolledBack}, func(t *testing.T, evs []Event) {
			e := evs[0]
			if e.Segment != "new-customers" || e.Variant != "express" || e.Reason != "Inferior" || e.Responses != 412 || e.Evidence != evidence || !e.At.Equal(t0) {
				t.Errorf("rollback event: %+v", e)
			}
			want := "express rolled back in segment new-customers at step 1/3 (Inferior after 412 responses): " + evidence
			if e.Message != want {
				t.Errorf("message %q\nwant    %q", e.Message, want)
			}
		}},
		{"awaiting a manual promotion", func(e *cxv1.CXExperiment) {
			e.Status.CurrentStep = 3
			e.Status.Conditions = []metav1.Condition{{Type: cxv1.ConditionReady, Status: metav1.ConditionTrue, Reason: cxv1.ReasonAwaitingPromotion, Message: "every variant is non-inferior"}}
		}, []Trigger{TriggerAwaitingPromotion}, func(t *testing.T, evs []Event) {
			if !strings.Contains(evs[0].Message, "kubectl cx promote checkout -n shop") || !evs[0].At.IsZero() {
				t.Errorf("awaiting event: %+v", evs[0])
			}
		}},
		{"promoted, per segment", func(e *cxv1.CXExperiment) {
			e.Status.Phase, e.Status.CompletedAt = cxv1.PhaseSucceeded, ptr(mt(time.Hour))
			e.Status.Segments = []cxv1.SegmentStatus{{Name: "enterprise", Promoted: "one-page"}, {Name: "new-customers"}}
		}, []Trigger{TriggerPromoted}, func(t *testing.T, evs []Event) {
			if evs[0].Message != "promoted: enterprise -> one-page, new-customers -> control" || len(evs[0].Promoted) != 2 || !evs[0].At.Equal(t0.Add(time.Hour)) {
				t.Errorf("promoted event: %+v", evs[0])
			}
		}},
		{"stalled and sample-ratio mismatch from their conditions", func(e *cxv1.CXExperiment) {
			e.Status.Phase = cxv1.PhaseFailed
			e.Status.Conditions = []metav1.Condition{
				{Type: conditionStalled, Status: metav1.ConditionTrue, Reason: "InvalidSpec", Message: "spec.steps[2].weight is above 100", LastTransitionTime: mt(0)},
				{Type: conditionSampleRatioMismatch, Status: metav1.ConditionTrue, Reason: "SampleRatioMismatch", Message: "one-page got 31% of the responses for 25% of the traffic", LastTransitionTime: mt(time.Minute)},
			}
		}, []Trigger{TriggerStalled, TriggerSampleRatioMismatch}, func(t *testing.T, evs []Event) {
			if evs[0].Message != "stalled (InvalidSpec): spec.steps[2].weight is above 100" || evs[1].Reason != "SampleRatioMismatch" || !evs[1].At.Equal(t0.Add(time.Minute)) {
				t.Errorf("condition events: %+v", evs)
			}
		}},
		{"conditions that are False tell nothing", func(e *cxv1.CXExperiment) {
			e.Status.Conditions = []metav1.Condition{
				{Type: conditionStalled, Status: metav1.ConditionFalse, Reason: "Running"},
				{Type: conditionSampleRatioMismatch, Status: metav1.ConditionFalse, Reason: "Balanced"},
				{Type: cxv1.ConditionReady, Status: metav1.ConditionTrue, Reason: cxv1.ReasonStepRunning},
			}
		}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp := experiment()
			tc.mutate(exp)
			evs := Events(exp)
			var got []Trigger
			for _, e := range evs {
				got = append(got, e.Trigger)
				if e.Namespace != "shop" || e.Name != "checkout" || e.Run != 1 || len(e.ID) != 20 {
					t.Errorf("event identity: %+v", e)
				}
			}
			if strings.Join(triggers(got), ",") != strings.Join(triggers(tc.want), ",") {
				t.Fatalf("triggers %v, want %v", got, tc.want)
			}
			if tc.check != nil {
				tc.check(t, evs)
			}
		})
	}
}

func triggers(ts []Trigger) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = string(t)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// TestEventIDs: the same recorded status gives the same IDs (deliveries are
// remembered by ID across restarts); what makes an event another one gives
// another ID.
func TestEventIDs(t *testing.T) {
	exp := experiment()
	exp.Status.Rollbacks = []cxv1.Rollback{rollback("new-customers", "express", 0)}
	id := Events(exp)[0].ID
	if again := Events(exp.DeepCopy())[0].ID; again != id {
		t.Errorf("the same status gave IDs %s and %s", id, again)
	}
	for name, mutate := range map[string]func(*cxv1.CXExperiment){
		"another run":                   func(e *cxv1.CXExperiment) { e.Status.Run = 2 },
		"another experiment, same name": func(e *cxv1.CXExperiment) { e.UID = "uid-2" },
		"another segment":               func(e *cxv1.CXExperiment) { e.Status.Rollbacks[0].Segment = "enterprise" },
		"a later rollback":              func(e *cxv1.CXExperiment) { e.Status.Rollbacks[0].At = mt(time.Second) },
	} {
		e := exp.DeepCopy()
		mutate(e)
		if other := Events(e)[0].ID; other == id {
			t.Errorf("%s: same ID %s", name, id)
		}
	}
	// Evidence and message do not identify the event.
	e := exp.DeepCopy()
	e.Status.Rollbacks[0].Evidence = "reworded"
	e.Status.CurrentStep = 3
	if other := Events(e)[0].ID; other != id {
		t.Error("rewording the evidence made a new event")
	}
}
