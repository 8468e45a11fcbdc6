package controller

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// statusExperiment returns an experiment in a phase, waiting for a reason.
func statusExperiment(phase cxv1.ExperimentPhase, waiting cxv1.WaitingReason, conds ...metav1.Condition) *cxv1.CXExperiment {
	exp := &cxv1.CXExperiment{}
	exp.Generation = 3
	exp.Spec.Variants = []cxv1.Variant{{Name: "control", Control: true}, {Name: "one-page"}}
	exp.Status.Phase, exp.Status.Waiting, exp.Status.Conditions = phase, waiting, conds
	return exp
}

// want is a condition as a table row reads it: "" when absent, else
// "True/Reason" or "False/Reason".
func conditionState(exp *cxv1.CXExperiment, t string) string {
	c := meta.FindStatusCondition(exp.Status.Conditions, t)
	if c == nil {
		return ""
	}
	return fmt.Sprintf("%s/%s", c.Status, c.Reason)
}

// conditionCase is a row of a setter's table: the condition the setter
// leaves ("" when absent, else "True/Reason" or "False/Reason").
type conditionCase struct {
	name string
	exp  *cxv1.CXExperiment
	in   conditionInputs
	want string
}

// runConditionCases runs set on each case and checks condition t.
func runConditionCases(t *testing.T, set func(*cxv1.CXExperiment, conditionInputs), ct string, cases []conditionCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			set(tc.exp, tc.in)
			if got := conditionState(tc.exp, ct); got != tc.want {
				t.Fatalf("%s = %q, want %q", ct, got, tc.want)
			}
		})
	}
}

var (
	resolved    = succeeded(cxv1.ReasonResolved, "found")
	routeGone   = failed(cxv1.ReasonRouteNotFound, "HTTPRoute checkout not found")
	applyFailed = failed(cxv1.ReasonApplyFailed, "patch HTTPRoute checkout: refused")
)

func TestSetReadyCondition(t *testing.T) {
	runConditionCases(t, setReadyCondition, cxv1.ConditionReady, []conditionCase{
		{"pending", statusExperiment(cxv1.PhasePending, ""), conditionInputs{}, "False/StepRunning"},
		{"pending, route missing", statusExperiment(cxv1.PhasePending, ""), conditionInputs{refs: routeGone}, "False/RouteNotFound"},
		{"step running", statusExperiment(cxv1.PhaseProgressing, cxv1.WaitingStepRunning), conditionInputs{refs: resolved}, "True/StepRunning"},
		{"holding undecided", statusExperiment(cxv1.PhaseProgressing, cxv1.WaitingInconclusive), conditionInputs{}, "True/HoldingInconclusive"},
		{"awaiting promotion", statusExperiment(cxv1.PhaseProgressing, cxv1.WaitingPromotion), conditionInputs{}, "True/AwaitingPromotion"},
		{"paused", statusExperiment(cxv1.PhasePaused, cxv1.WaitingPaused), conditionInputs{}, "True/Paused"},
		{"route write failed", statusExperiment(cxv1.PhaseProgressing, cxv1.WaitingStepRunning), conditionInputs{routed: applyFailed, err: errors.New("refused")}, "False/ApplyFailed"},
		{"reconcile error", statusExperiment(cxv1.PhaseProgressing, cxv1.WaitingStepRunning), conditionInputs{err: errors.New("list experiments: timeout")}, "False/ReconcileError"},
		{"succeeded", statusExperiment(cxv1.PhaseSucceeded, ""), conditionInputs{}, "True/Succeeded"},
		{"rolled back", statusExperiment(cxv1.PhaseRolledBack, ""), conditionInputs{}, "False/RolledBack"},
		{"failed now: the cause", statusExperiment(cxv1.PhaseFailed, ""), conditionInputs{refs: failed(cxv1.ReasonConflict, "experiment first routes it")}, "False/ConflictingExperiment"},
		{"failed earlier: the recorded cause", statusExperiment(cxv1.PhaseFailed, "", metav1.Condition{Type: cxv1.ConditionReferencesResolved, Status: metav1.ConditionFalse, Reason: cxv1.ReasonSegmentInvalid, Message: "bad regex"}),
			conditionInputs{}, "False/SegmentInvalid"},
		{"failed, invalid spec", statusExperiment(cxv1.PhaseFailed, ""), conditionInputs{refs: failed(cxv1.ReasonInvalidSpec, "spec.satisfaction.maxDrop: 75 is outside 0..50"), err: reconcile.TerminalError(errors.New("maxDrop"))}, "False/InvalidSpec"},
	})
}

func TestSetReconcilingCondition(t *testing.T) {
	runConditionCases(t, setReconcilingCondition, cxv1.ConditionReconciling, []conditionCase{
		{"pending", statusExperiment(cxv1.PhasePending, ""), conditionInputs{}, "True/StepRunning"},
		{"pending, waiting for a Service", statusExperiment(cxv1.PhasePending, ""), conditionInputs{refs: failed(cxv1.ReasonServiceNotFound, "Service checkout-v9 not found")}, "True/ServiceNotFound"},
		{"step running", statusExperiment(cxv1.PhaseProgressing, cxv1.WaitingStepRunning), conditionInputs{}, "True/StepRunning"},
		{"holding undecided", statusExperiment(cxv1.PhaseProgressing, cxv1.WaitingInconclusive), conditionInputs{}, "True/HoldingInconclusive"},
		{"awaiting promotion: a human decides", statusExperiment(cxv1.PhaseProgressing, cxv1.WaitingPromotion), conditionInputs{}, ""},
		{"paused", statusExperiment(cxv1.PhasePaused, cxv1.WaitingPaused), conditionInputs{}, ""},
		{"succeeded", statusExperiment(cxv1.PhaseSucceeded, ""), conditionInputs{}, ""},
		{"rolled back", statusExperiment(cxv1.PhaseRolledBack, ""), conditionInputs{}, ""},
		{"failed", statusExperiment(cxv1.PhaseFailed, ""), conditionInputs{}, ""},
		{"removed once the run ends", statusExperiment(cxv1.PhaseSucceeded, "", metav1.Condition{Type: cxv1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: cxv1.ReasonStepRunning}),
			conditionInputs{}, ""},
	})
}

func TestSetStalledCondition(t *testing.T) {
	runConditionCases(t, setStalledCondition, cxv1.ConditionStalled, []conditionCase{
		{"failed: invalid spec", statusExperiment(cxv1.PhaseFailed, ""), conditionInputs{refs: failed(cxv1.ReasonInvalidSpec, "spec.satisfaction.maxDrop")}, "True/InvalidSpec"},
		{"failed: route limit", statusExperiment(cxv1.PhaseFailed, ""), conditionInputs{refs: failed(cxv1.ReasonRouteLimitExceeded, "18 route rules"), routed: failed(cxv1.ReasonRouteLimitExceeded, "18 route rules")}, "True/RouteLimitExceeded"},
		{"rolled back", statusExperiment(cxv1.PhaseRolledBack, ""), conditionInputs{}, "True/RolledBack"},
		{"pending, route missing: it may still appear", statusExperiment(cxv1.PhasePending, ""), conditionInputs{refs: routeGone}, ""},
		{"step running", statusExperiment(cxv1.PhaseProgressing, cxv1.WaitingStepRunning), conditionInputs{}, ""},
		{"succeeded", statusExperiment(cxv1.PhaseSucceeded, ""), conditionInputs{}, ""},
		{"removed by a retry", statusExperiment(cxv1.PhasePending, "", metav1.Condition{Type: cxv1.ConditionStalled, Status: metav1.ConditionTrue, Reason: cxv1.ReasonRolledBack}),
			conditionInputs{}, ""},
	})
}

func TestSetDegradedCondition(t *testing.T) {
	rolledBack := func(phase cxv1.ExperimentPhase) *cxv1.CXExperiment {
		exp := statusExperiment(phase, "")
		exp.Status.Rollbacks = []cxv1.Rollback{{Variant: "one-page", Segment: "enterprise", Reason: cxv1.RollbackInferior}}
		return exp
	}
	runConditionCases(t, setDegradedCondition, cxv1.ConditionDegraded, []conditionCase{
		{"healthy", statusExperiment(cxv1.PhaseProgressing, cxv1.WaitingStepRunning), conditionInputs{refs: resolved}, "False/Healthy"},
		{"measuring failed", statusExperiment(cxv1.PhaseProgressing, cxv1.WaitingStepRunning), conditionInputs{measured: failed(cxv1.ReasonMeasurementFailed, "prometheus down")}, "True/MeasurementFailed"},
		{"route write failed", statusExperiment(cxv1.PhaseProgressing, cxv1.WaitingStepRunning), conditionInputs{routed: applyFailed}, "True/ApplyFailed"},
		{"one segment rolled back", rolledBack(cxv1.PhaseProgressing), conditionInputs{}, "True/PartialRollback"},
		{"every segment rolled back", rolledBack(cxv1.PhaseRolledBack), conditionInputs{}, "True/RolledBack"},
		{"an error comes first", rolledBack(cxv1.PhaseProgressing), conditionInputs{err: errors.New("timeout")}, "True/ReconcileError"},
	})
}

func TestSetDomainConditionsKeepPartsThatDidNotRun(t *testing.T) {
	exp := statusExperiment(cxv1.PhaseProgressing, cxv1.WaitingStepRunning,
		metav1.Condition{Type: cxv1.ConditionMeasured, Status: metav1.ConditionTrue, Reason: cxv1.ReasonMeasured, ObservedGeneration: 2})
	setDomainConditions(exp, conditionInputs{refs: resolved, routed: applyFailed, generation: 3})
	for tp, want := range map[string]string{
		cxv1.ConditionReferencesResolved: "True/Resolved",
		cxv1.ConditionTrafficRouted:      "False/ApplyFailed",
		cxv1.ConditionMeasured:           "True/Measured",
	} {
		if got := conditionState(exp, tp); got != want {
			t.Errorf("%s = %q, want %q", tp, got, want)
		}
	}
	if c := meta.FindStatusCondition(exp.Status.Conditions, cxv1.ConditionMeasured); c.ObservedGeneration != 2 {
		t.Errorf("Measured did not run: its observedGeneration %d changed", c.ObservedGeneration)
	}
}

// TestSetStatusObservedGeneration: observedGeneration (status and
// conditions) advances only when the reconcile finished with the
// generation: it succeeded, or found the spec invalid.
func TestSetStatusObservedGeneration(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int64
	}{
		{"succeeded", nil, 3},
		{"the route write failed", errors.New("patch HTTPRoute checkout: refused"), 2},
		{"invalid spec (terminal)", reconcile.TerminalError(errors.New("spec.satisfaction.maxDrop")), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp := statusExperiment(cxv1.PhaseProgressing, cxv1.WaitingStepRunning,
				metav1.Condition{Type: "Progressing", Status: metav1.ConditionTrue, Reason: cxv1.ReasonStepRunning})
			exp.Status.ObservedGeneration = 2
			sc := newScope(exp, exp.CreationTimestamp.Time)
			sc.refs = resolved
			setStatus(sc, tc.err, finished(tc.err))
			if exp.Status.ObservedGeneration != tc.want {
				t.Errorf("observedGeneration = %d, want %d", exp.Status.ObservedGeneration, tc.want)
			}
			for _, c := range exp.Status.Conditions {
				if c.ObservedGeneration != tc.want {
					t.Errorf("condition %s: observedGeneration %d, want %d", c.Type, c.ObservedGeneration, tc.want)
				}
			}
			if meta.FindStatusCondition(exp.Status.Conditions, "Progressing") != nil {
				t.Error("the Progressing condition of older versions is still there")
			}
		})
	}
}

// withSegments gives exp one segment per sample-ratio state (nil: no test yet).
func withSegments(exp *cxv1.CXExperiment, srs ...*cxv1.SampleRatioStatus) *cxv1.CXExperiment {
	for i, sr := range srs {
		exp.Status.Segments = append(exp.Status.Segments, cxv1.SegmentStatus{Name: fmt.Sprintf("s%d", i), Epoch: 2, SampleRatio: sr})
	}
	return exp
}

func TestSetSampleRatioCondition(t *testing.T) {
	off := &cxv1.SampleRatioStatus{Mismatch: true, Epoch: 2, Evidence: "9.8 of 6.9", Shares: "control 81.0% (expected 75.0%), one-page 19.0% (expected 25.0%)"}
	fine := &cxv1.SampleRatioStatus{Epoch: 2, Evidence: "0.3 of 6.9"}
	runConditionCases(t, setSampleRatioCondition, cxv1.ConditionSampleRatioMismatch, []conditionCase{
		{name: "no test yet", exp: withSegments(statusExperiment(cxv1.PhaseProgressing, cxv1.WaitingStepRunning), nil), want: ""},
		{name: "shares match", exp: withSegments(statusExperiment(cxv1.PhaseProgressing, cxv1.WaitingStepRunning), fine, fine), want: ""},
		{name: "one segment off", exp: withSegments(statusExperiment(cxv1.PhaseProgressing, cxv1.WaitingStepRunning), fine, off),
			want: "True/" + cxv1.ReasonResponseSharesOffWeights},
		{name: "paused, off", exp: withSegments(statusExperiment(cxv1.PhasePaused, cxv1.WaitingPaused), off), want: "True/" + cxv1.ReasonResponseSharesOffWeights},
		{name: "ended: nothing left to hold", exp: withSegments(statusExperiment(cxv1.PhaseSucceeded, ""), off), want: ""},
		{name: "cleared once the shares match again",
			exp:  withSegments(statusExperiment(cxv1.PhaseProgressing, cxv1.WaitingStepRunning, metav1.Condition{Type: cxv1.ConditionSampleRatioMismatch, Status: metav1.ConditionTrue, Reason: cxv1.ReasonResponseSharesOffWeights}), fine),
			want: ""},
	})
	exp := withSegments(statusExperiment(cxv1.PhaseProgressing, cxv1.WaitingStepRunning), off)
	setSampleRatioCondition(exp, conditionInputs{})
	msg := meta.FindStatusCondition(exp.Status.Conditions, cxv1.ConditionSampleRatioMismatch).Message
	for _, want := range []string{"segment s0 in epoch 2", off.Shares, "survey", "stickiness"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
}

func TestSetSettingsChangedCondition(t *testing.T) {
	running := func(phase cxv1.ExperimentPhase, maxDrop string) *cxv1.CXExperiment {
		exp := statusExperiment(phase, cxv1.WaitingStepRunning)
		exp.Name, exp.Status.Run = "checkout", 2
		exp.Spec.Satisfaction = cxv1.Satisfaction{Metric: cxv1.MetricCSAT, MaxDrop: "3", Confidence: "95", MinResponses: 100}
		rs, err := exp.Spec.Satisfaction.RunSettings()
		if err != nil {
			t.Fatal(err)
		}
		exp.Status.Settings = &rs
		exp.Spec.Satisfaction.MaxDrop = maxDrop
		return exp
	}
	runConditionCases(t, setSettingsChangedCondition, cxv1.ConditionSettingsChanged, []conditionCase{
		{name: "unchanged", exp: running(cxv1.PhaseProgressing, "3"), want: ""},
		{name: "the same threshold written differently", exp: running(cxv1.PhaseProgressing, "3.0"), want: ""},
		{name: "maxDrop edited mid-run", exp: running(cxv1.PhaseProgressing, "5"), want: "True/" + cxv1.ReasonAppliesToNextRun},
		{name: "edited while paused", exp: running(cxv1.PhasePaused, "5"), want: "True/" + cxv1.ReasonAppliesToNextRun},
		{name: "edited after the run ended", exp: running(cxv1.PhaseRolledBack, "5"), want: ""},
	})
	exp := running(cxv1.PhaseProgressing, "5")
	setSettingsChangedCondition(exp, conditionInputs{})
	msg := meta.FindStatusCondition(exp.Status.Conditions, cxv1.ConditionSettingsChanged).Message
	for _, want := range []string{"maxDrop 3 -> 5", "run 2", "kubectl cx retry checkout"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
}
