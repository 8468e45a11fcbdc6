package controller

import (
	"context"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// CustomerSegmentReconciler reports whether a segment can be rendered into
// routes (what the CRD schema cannot check, such as regular expressions).
type CustomerSegmentReconciler struct {
	client.Client
}

// +kubebuilder:rbac:groups=cx.rapport.dev,resources=customersegments,verbs=get;list;watch
// +kubebuilder:rbac:groups=cx.rapport.dev,resources=customersegments/status,verbs=get;patch

// Reconcile sets the Ready condition of a CustomerSegment.
func (r *CustomerSegmentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	seg := &cxv1.CustomerSegment{}
	if err := r.Get(ctx, req.NamespacedName, seg); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	patch := client.MergeFrom(seg.DeepCopy())
	cond := metav1.Condition{Type: cxv1.ConditionReady, Status: metav1.ConditionTrue, Reason: cxv1.ReasonValid,
		Message: "the segment can be routed", ObservedGeneration: seg.Generation}
	if err := ValidateSegment(seg); err != nil {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, cxv1.ReasonInvalid, err.Error()
	}
	meta.SetStatusCondition(&seg.Status.Conditions, cond)
	seg.Status.ObservedGeneration = seg.Generation
	return ctrl.Result{}, client.IgnoreNotFound(r.Status().Patch(ctx, seg, patch))
}

// SetupWithManager registers the controller.
func (r *CustomerSegmentReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&cxv1.CustomerSegment{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("customersegment").
		Complete(r)
}
