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
	promsource "github.com/rapport-dev/rapport/internal/measure/prometheus"
)

// SatisfactionMetricReconciler reports whether a metric's query template is
// usable, before an experiment depends on it.
type SatisfactionMetricReconciler struct {
	client.Client
}

// +kubebuilder:rbac:groups=cx.rapport.dev,resources=satisfactionmetrics,verbs=get;list;watch
// +kubebuilder:rbac:groups=cx.rapport.dev,resources=satisfactionmetrics/status,verbs=get;patch

// Reconcile sets the Ready condition of a SatisfactionMetric.
func (r *SatisfactionMetricReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	m := &cxv1.SatisfactionMetric{}
	if err := r.Get(ctx, req.NamespacedName, m); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	patch := client.MergeFrom(m.DeepCopy())
	cond := metav1.Condition{Type: cxv1.ConditionReady, Status: metav1.ConditionTrue, Reason: cxv1.ReasonValid,
		Message: "the query template renders", ObservedGeneration: m.Generation}
	if err := promsource.Validate(m.Spec.Prometheus.Query); err != nil {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, cxv1.ReasonInvalid, "spec.prometheus.query: "+err.Error()
	}
	meta.SetStatusCondition(&m.Status.Conditions, cond)
	m.Status.ObservedGeneration = m.Generation
	return ctrl.Result{}, client.IgnoreNotFound(r.Status().Patch(ctx, m, patch))
}

// SetupWithManager registers the controller.
func (r *SatisfactionMetricReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&cxv1.SatisfactionMetric{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("satisfactionmetric").
		Complete(r)
}
