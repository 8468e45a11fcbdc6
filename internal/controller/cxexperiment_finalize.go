package controller

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/metrics"
	"github.com/rapport-dev/rapport/internal/rollout"
	"github.com/rapport-dev/rapport/internal/routing"
)

// finalize undoes the experiment's traffic changes before it goes away:
// traffic back to the control, except for a Succeeded experiment whose
// promoted split stays in place (documented in docs/concepts.md). It then
// removes the collector's tally and the experiment's metric series.
func (r *CXExperimentReconciler) finalize(ctx context.Context, sc *scope) (ctrl.Result, error) {
	exp := sc.exp
	if !controllerutil.ContainsFinalizer(exp, cxv1.Finalizer) {
		return ctrl.Result{}, nil
	}
	keepPromoted := exp.Status.Phase == cxv1.PhaseSucceeded
	if router, err := routing.New(exp, routing.Deps{Client: r.Client, Scheme: r.Scheme, GatewayAPI: r.GatewayAPI}); err == nil {
		if err := router.Finalize(ctx, exp, keepPromoted); err != nil {
			r.event(exp, rollout.Event{Warning: true, Reason: "FinalizeFailed", Message: "could not restore traffic before deletion, retrying: " + err.Error()})
			return ctrl.Result{}, fmt.Errorf("restore traffic of %s: %w", exp.Name, err)
		}
	}
	tally := &cxv1.ResponseTally{}
	tally.Namespace, tally.Name = exp.Namespace, exp.Name
	if err := r.Delete(ctx, tally); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("delete ResponseTally %s: %w", exp.Name, err)
	}
	metrics.ForgetExperiment(exp.Namespace, exp.Name)
	patch := client.MergeFrom(exp.DeepCopy())
	controllerutil.RemoveFinalizer(exp, cxv1.Finalizer)
	if err := r.Patch(ctx, exp, patch); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("remove finalizer: %w", err)
	}
	return ctrl.Result{}, nil
}
