package controller

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	promsource "github.com/rapport-dev/rapport/internal/measure/prometheus"
)

// ValidationReconciler keeps the Ready condition of the objects experiments
// refer to, CustomerSegments and SatisfactionMetrics: whether what their
// schema cannot check holds (regular expressions a gateway can run, a query
// template that renders), before an experiment depends on them. It runs one
// controller per kind with the same reconcile.
type ValidationReconciler struct {
	client.Client
}

// +kubebuilder:rbac:groups=cx.rapport.dev,resources=customersegments,verbs=get;list;watch
// +kubebuilder:rbac:groups=cx.rapport.dev,resources=customersegments/status,verbs=get;patch
// +kubebuilder:rbac:groups=cx.rapport.dev,resources=satisfactionmetrics,verbs=get;list;watch
// +kubebuilder:rbac:groups=cx.rapport.dev,resources=satisfactionmetrics/status,verbs=get;patch

// validatedKind is a kind the ValidationReconciler checks.
type validatedKind struct {
	// name of its controller.
	name      string
	newObject func() client.Object
	// validate checks the object; valid is the Ready message when it passes.
	validate func(client.Object) error
	valid    string
	// status returns the object's observedGeneration and conditions.
	status func(client.Object) (*int64, *[]metav1.Condition)
}

var validatedKinds = []validatedKind{
	{
		name:      "customersegment",
		newObject: func() client.Object { return &cxv1.CustomerSegment{} },
		validate:  func(o client.Object) error { return ValidateSegment(o.(*cxv1.CustomerSegment)) },
		valid:     "the segment can be routed",
		status: func(o client.Object) (*int64, *[]metav1.Condition) {
			st := &o.(*cxv1.CustomerSegment).Status
			return &st.ObservedGeneration, &st.Conditions
		},
	},
	{
		name:      "satisfactionmetric",
		newObject: func() client.Object { return &cxv1.SatisfactionMetric{} },
		validate: func(o client.Object) error {
			if err := promsource.Validate(o.(*cxv1.SatisfactionMetric).Spec.Prometheus.Query); err != nil {
				return fmt.Errorf("spec.prometheus.query: %w", err)
			}
			return nil
		},
		valid: "the query template renders",
		status: func(o client.Object) (*int64, *[]metav1.Condition) {
			st := &o.(*cxv1.SatisfactionMetric).Status
			return &st.ObservedGeneration, &st.Conditions
		},
	},
}

// reconcile sets the Ready condition of one object of kind k.
func (r *ValidationReconciler) reconcile(ctx context.Context, req ctrl.Request, k validatedKind) (ctrl.Result, error) {
	obj := k.newObject()
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
	cond := metav1.Condition{Type: cxv1.ConditionReady, Status: metav1.ConditionTrue, Reason: cxv1.ReasonValid,
		Message: k.valid, ObservedGeneration: obj.GetGeneration()}
	if err := k.validate(obj); err != nil {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, cxv1.ReasonInvalid, err.Error()
	}
	observed, conditions := k.status(obj)
	meta.SetStatusCondition(conditions, cond)
	*observed = obj.GetGeneration()
	return ctrl.Result{}, client.IgnoreNotFound(r.Status().Patch(ctx, obj, patch))
}

// SetupWithManager registers one controller per validated kind.
func (r *ValidationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	for _, k := range validatedKinds {
		err := ctrl.NewControllerManagedBy(mgr).
			For(k.newObject(), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
			Named(k.name).
			Complete(reconcile.Func(func(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
				return r.reconcile(ctx, req, k)
			}))
		if err != nil {
			return fmt.Errorf("set up the %s controller: %w", k.name, err)
		}
	}
	return nil
}

// ValidateSegment checks what the CRD schema cannot: that regular
// expressions compile (RE2, the syntax of Envoy-based gateways).
func ValidateSegment(seg *cxv1.CustomerSegment) error {
	check := func(field, name string, t cxv1.MatchType, value string) error {
		if t != cxv1.MatchRegularExpression {
			return nil
		}
		if _, err := regexp.Compile(value); err != nil {
			return fmt.Errorf("spec.match.%s[%s].value is not a valid RE2 regular expression: %v", field, name, err)
		}
		return nil
	}
	for _, h := range seg.Spec.Match.Headers {
		if err := check("headers", h.Name, h.Type, h.Value); err != nil {
			return err
		}
	}
	for _, q := range seg.Spec.Match.QueryParams {
		if err := check("queryParams", q.Name, q.Type, q.Value); err != nil {
			return err
		}
	}
	for _, c := range seg.Spec.Match.Cookies {
		if err := check("cookies", c.Name, c.Type, c.Value); err != nil {
			return err
		}
		if c.Type == cxv1.MatchRegularExpression && strings.Contains(c.Value, ";") {
			return fmt.Errorf("spec.match.cookies[%s].value must not contain ';' (it would match across cookies)", c.Name)
		}
	}
	return nil
}
