package controller

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/metrics"
	"github.com/rapport-dev/rapport/internal/rollout"
)

// announce records the decision's events and counters, after the traffic
// change and the status write.
func (r *CXExperimentReconciler) announce(sc *scope) {
	for _, e := range append(sc.events, sc.decision.Events...) {
		r.event(sc.exp, e)
	}
	if sc.routeErr != nil && len(sc.decision.RolledBack) > 0 {
		r.event(sc.exp, rollout.Event{Warning: true, Reason: "TrafficNotApplied",
			Message: "a rollback was decided but the route could not be changed yet; retrying: " + sc.routeErr.Error()})
	}
	for _, t := range []string{cxv1.ConditionSampleRatioMismatch, cxv1.ConditionSettingsChanged} {
		if c := meta.FindStatusCondition(sc.exp.Status.Conditions, t); c != nil && meta.FindStatusCondition(sc.before.Conditions, t) == nil {
			r.event(sc.exp, rollout.Event{Warning: true, Reason: t, Message: c.Message})
		}
	}
	metrics.RecordRollbacks(sc.exp, sc.decision.RolledBack)
	if sc.exp.Status.Phase == cxv1.PhaseSucceeded && sc.before.Phase != cxv1.PhaseSucceeded {
		how := "automatic"
		if sc.exp.Status.HandledActions.Promote != sc.before.HandledActions.Promote {
			how = "manual"
		}
		for _, s := range sc.exp.Status.Segments {
			if s.Promoted != "" && s.Promoted != sc.exp.Spec.ControlVariant().Name {
				metrics.Promotions.WithLabelValues(sc.exp.Namespace, sc.exp.Name, s.Name, how).Inc()
			}
		}
	}
}

// event records a Kubernetes Event on the experiment.
func (r *CXExperimentReconciler) event(exp *cxv1.CXExperiment, e rollout.Event) {
	if r.Recorder == nil {
		return
	}
	kind := corev1.EventTypeNormal
	if e.Warning {
		kind = corev1.EventTypeWarning
	}
	note := e.Message
	if len(note) > 1000 { // events.k8s.io notes are limited to 1 kB
		note = note[:997] + "..."
	}
	r.Recorder.Eventf(exp, nil, kind, e.Reason, e.Reason, "%s", note)
}
