package controller

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// setConditions derives the conditions from the phase and the outcomes of
// this reconcile. Parts that did not run keep their previous condition.
func setConditions(sc *scope) {
	exp := sc.exp
	st := &exp.Status
	gen := exp.Generation
	set := func(t string, ok bool, reason, msg string) {
		status := metav1.ConditionFalse
		if ok {
			status = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: status, Reason: reason, Message: truncate(msg), ObservedGeneration: gen})
	}
	for _, c := range []struct {
		t string
		o outcome
	}{{cxv1.ConditionReferencesResolved, sc.refs}, {cxv1.ConditionMeasured, sc.measured}, {cxv1.ConditionTrafficRouted, sc.routed}} {
		if c.o.evaluated {
			set(c.t, c.o.ok, c.o.reason, c.o.message)
		}
	}

	ready, progressing := readyCondition(sc), progressingCondition(sc)
	set(cxv1.ConditionReady, ready.ok, ready.reason, ready.message)
	set(cxv1.ConditionProgressing, progressing.ok, progressing.reason, progressing.message)
	degraded := degradedCondition(sc)
	set(cxv1.ConditionDegraded, degraded.ok, degraded.reason, degraded.message)
}

func truncate(s string) string {
	if len(s) > 32000 { // metav1.Condition messages are limited to 32768 bytes
		return s[:32000] + "..."
	}
	return s
}

// blocking returns the first failed outcome of this reconcile.
func blocking(sc *scope) (outcome, bool) {
	for _, o := range []outcome{sc.refs, sc.routed} {
		if o.evaluated && !o.ok {
			return o, true
		}
	}
	return outcome{}, false
}

func readyCondition(sc *scope) outcome {
	st := &sc.exp.Status
	switch st.Phase {
	case cxv1.PhaseFailed:
		if c := meta.FindStatusCondition(st.Conditions, cxv1.ConditionReferencesResolved); c != nil && c.Status == metav1.ConditionFalse && !sc.refs.evaluated {
			return failed(c.Reason, "%s", c.Message)
		}
		if o, bad := blocking(sc); bad {
			return o
		}
		return failed(cxv1.ReasonInvalidSpec, "the experiment failed; fix the cause and retry with the %s annotation", cxv1.AnnotationRetry)
	case cxv1.PhaseRolledBack:
		return failed(cxv1.ReasonRolledBack, "%s", rollbackSummary(st))
	}
	if o, bad := blocking(sc); bad {
		return o
	}
	switch st.Phase {
	case cxv1.PhaseSucceeded:
		return succeeded(cxv1.ReasonSucceeded, "promoted: %s", formatWeights(sc.exp))
	case cxv1.PhasePending:
		return failed(cxv1.ReasonStepRunning, "waiting to start")
	}
	return succeeded(waitingReason(sc), "%s", sc.decision.WaitingMessage)
}

func waitingReason(sc *scope) string {
	if w := sc.exp.Status.Waiting; w != "" {
		return string(w)
	}
	return cxv1.ReasonStepRunning
}

func progressingCondition(sc *scope) outcome {
	st := &sc.exp.Status
	switch st.Phase {
	case cxv1.PhaseSucceeded:
		return failed(cxv1.ReasonSucceeded, "the experiment ended: promoted")
	case cxv1.PhaseRolledBack:
		return failed(cxv1.ReasonRolledBack, "the experiment ended: rolled back")
	case cxv1.PhaseFailed:
		return failed(cxv1.ReasonInvalidSpec, "the experiment ended: failed")
	case cxv1.PhasePending:
		if o, bad := blocking(sc); bad {
			return failed(o.reason, "waiting to start: %s", o.message)
		}
		return succeeded(cxv1.ReasonStepRunning, "starting")
	}
	return succeeded(waitingReason(sc), "%s", sc.decision.WaitingMessage)
}

func degradedCondition(sc *scope) outcome {
	st := &sc.exp.Status
	if o, bad := blocking(sc); bad {
		return succeeded(o.reason, "%s", o.message)
	}
	if sc.measured.evaluated && !sc.measured.ok {
		return succeeded(sc.measured.reason, "%s", sc.measured.message)
	}
	if len(st.Rollbacks) > 0 {
		reason := cxv1.ReasonPartialRollback
		if st.Phase == cxv1.PhaseRolledBack {
			reason = cxv1.ReasonRolledBack
		}
		return succeeded(reason, "%s", rollbackSummary(st))
	}
	return failed(cxv1.ReasonHealthy, "no variant rolled back, no error")
}

func rollbackSummary(st *cxv1.CXExperimentStatus) string {
	if len(st.Rollbacks) == 0 {
		return "rolled back"
	}
	last := st.Rollbacks[len(st.Rollbacks)-1]
	return fmt.Sprintf("%d rollback(s); last: %s in %s (%s): %s", len(st.Rollbacks), last.Variant, last.Segment, last.Reason, last.Evidence)
}
