package controller

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/rollout"
)

// decide runs the rollout state machine.
func (r *CXExperimentReconciler) decide(_ context.Context, sc *scope) (ctrl.Result, bool, error) {
	a := sc.exp.Annotations
	out := rollout.Decide(rollout.Input{
		Spec:       &sc.exp.Spec,
		Status:     &sc.exp.Status,
		Judgements: sc.judgements,
		Breaches:   sc.breaches,
		Mismatches: sc.mismatches,
		Actions:    rollout.Actions{Promote: a[cxv1.AnnotationPromote], Abort: a[cxv1.AnnotationAbort], Retry: a[cxv1.AnnotationRetry]},
		Now:        sc.now,
	})
	sc.exp.Status = out.Status
	sc.decision = out
	return ctrl.Result{RequeueAfter: out.RequeueAfter}, false, nil
}

// fail moves the experiment to Failed: its traffic goes back to the control
// in the route phase. Failed is terminal until a retry.
func (r *CXExperimentReconciler) fail(sc *scope, reason, message string) {
	st := &sc.exp.Status
	if st.Phase != cxv1.PhaseFailed {
		st.Phase = cxv1.PhaseFailed
		now := metav1.NewTime(sc.now)
		st.CompletedAt = &now
		st.PausedAt = nil
		sc.events = append(sc.events, rollout.Event{Warning: true, Reason: "Failed", Message: message})
	}
	sc.refs = failed(reason, "%s", message)
}
