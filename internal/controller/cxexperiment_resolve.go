package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/routing"
	"github.com/rapport-dev/rapport/internal/routing/gatewayapi"
	"github.com/rapport-dev/rapport/internal/routing/traffic"
)

// resolve reads every object the spec names, once per reconcile: the
// parent route and the segments for every phase (the route phase needs them
// to keep or restore the split), the Services, Deployments and metric only
// while the run goes on. A missing object keeps the experiment where it is
// (no traffic change) until it appears; an unusable one fails the experiment.
func (r *CXExperimentReconciler) resolve(ctx context.Context, sc *scope) (ctrl.Result, bool, error) {
	exp := sc.exp
	terminal := exp.Status.Phase.Terminal()
	missing := func(reason, format string, args ...any) (ctrl.Result, bool, error) {
		sc.refs = failed(reason, format, args...)
		return ctrl.Result{RequeueAfter: requeueMissing}, true, nil
	}
	if exp.Spec.Traffic.GatewayAPI != nil && r.GatewayAPI {
		parent, err := gatewayapi.ReadParent(ctx, r.Client, exp)
		switch {
		case err == nil:
			sc.parent = parent
		case traffic.ReasonOf(err, "") != cxv1.ReasonRouteNotFound:
			return ctrl.Result{}, true, err
		case !terminal:
			return missing(cxv1.ReasonRouteNotFound, "%s", err.Error())
		}
		// A terminal experiment whose route is gone: the route phase says so.
	}
	router, err := routing.New(exp, routing.Deps{Client: r.Client, Scheme: r.Scheme, GatewayAPI: r.GatewayAPI, ParentRoute: sc.parent})
	if err != nil {
		sc.refs = failed(traffic.ReasonOf(err, cxv1.ReasonInvalidSpec), "%s", err.Error())
		return ctrl.Result{RequeueAfter: requeueMissing}, true, nil
	}
	sc.router = router
	if terminal {
		return r.resolveSegmentsOfEnded(ctx, sc)
	}
	meta := func(apiVersion, kind, name string) error {
		m := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}}
		return r.Get(ctx, types.NamespacedName{Namespace: exp.Namespace, Name: name}, m)
	}
	if exp.Spec.Traffic.GatewayAPI != nil {
		for _, v := range exp.Spec.Variants {
			if err := meta("v1", "Service", v.Service.Name); err != nil {
				if apierrors.IsNotFound(err) {
					return missing(cxv1.ReasonServiceNotFound, "Service %s of variant %s not found in namespace %s; create it, or recreate the experiment with the right spec.variants[].service (the field is immutable)",
						v.Service.Name, v.Name, exp.Namespace)
				}
				return ctrl.Result{}, true, err
			}
		}
	}
	if exp.Spec.Traffic.Replicas != nil {
		for _, v := range exp.Spec.Variants {
			if err := meta("apps/v1", "Deployment", v.Deployment); err != nil {
				if apierrors.IsNotFound(err) {
					return missing(cxv1.ReasonDeploymentNotFound, "Deployment %s of variant %s not found in namespace %s; create it, or recreate the experiment with the right spec.variants[].deployment (the field is immutable)",
						v.Deployment, v.Name, exp.Namespace)
				}
				return ctrl.Result{}, true, err
			}
		}
	}
	sc.segments = map[string]*cxv1.CustomerSegment{}
	for _, name := range exp.Spec.Segments {
		seg := &cxv1.CustomerSegment{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: exp.Namespace, Name: name}, seg); err != nil {
			if apierrors.IsNotFound(err) {
				return missing(cxv1.ReasonSegmentNotFound, "CustomerSegment %s not found in namespace %s; create it, or recreate the experiment with the right spec.segments (the field is immutable)", name, exp.Namespace)
			}
			return ctrl.Result{}, true, err
		}
		sc.segments[name] = seg
		if err := ValidateSegment(seg); err != nil {
			r.fail(sc, cxv1.ReasonSegmentInvalid, fmt.Sprintf("CustomerSegment %s cannot be routed: %v", name, err))
			return r.resolveSegmentsOfEnded(ctx, sc)
		}
	}
	if ref := exp.Spec.Satisfaction.Source.MetricRef; ref != nil {
		m := &cxv1.SatisfactionMetric{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: exp.Namespace, Name: ref.Name}, m); err != nil {
			if apierrors.IsNotFound(err) {
				return missing(cxv1.ReasonMetricNotFound, "SatisfactionMetric %s not found in namespace %s; create it or fix spec.satisfaction.source.metricRef", ref.Name, exp.Namespace)
			}
			return ctrl.Result{}, true, err
		}
		sc.metric = m
	}
	sc.refs = succeeded(cxv1.ReasonResolved, "route, services, segments and metric found")
	return ctrl.Result{}, false, nil
}

// resolveSegmentsOfEnded reads the segments of an experiment that has
// ended. A split that routes no variant needs none; a promoted split needs
// the segments whose promoted variant it keeps routed, and while one is
// missing the route stays as it is.
func (r *CXExperimentReconciler) resolveSegmentsOfEnded(ctx context.Context, sc *scope) (ctrl.Result, bool, error) {
	exp := sc.exp
	sc.segments = map[string]*cxv1.CustomerSegment{}
	if exp.Spec.Traffic.GatewayAPI == nil {
		return ctrl.Result{}, false, nil
	}
	for _, name := range exp.Spec.Segments {
		seg := &cxv1.CustomerSegment{}
		err := r.Get(ctx, types.NamespacedName{Namespace: exp.Namespace, Name: name}, seg)
		switch {
		case apierrors.IsNotFound(err) && exp.Status.Phase != cxv1.PhaseSucceeded:
			continue // nothing is routed to a variant: no match needed
		case apierrors.IsNotFound(err):
			sc.routed = failed(cxv1.ReasonSegmentNotFound, "CustomerSegment %s is needed to keep its promoted variant routed: %v", name, err)
			sc.keepTraffic = true
			return ctrl.Result{RequeueAfter: requeueMissing}, false, nil
		case err != nil:
			return ctrl.Result{}, true, err
		}
		sc.segments[name] = seg
	}
	return ctrl.Result{}, false, nil
}

// overlaps reports whether two experiments route the same customers.
func overlaps(a, b *cxv1.CXExperiment) bool {
	if len(a.Spec.Segments) == 0 || len(b.Spec.Segments) == 0 {
		return true
	}
	for _, s := range a.Spec.Segments {
		if slices.Contains(b.Spec.Segments, s) {
			return true
		}
	}
	return false
}

// earlier orders experiments by creation time, then name.
func earlier(a, b *cxv1.CXExperiment) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// checkConflicts fails an experiment that would route the same customers
// of the same route (or the same Deployments) as an earlier one.
func (r *CXExperimentReconciler) checkConflicts(ctx context.Context, sc *scope) (ctrl.Result, bool, error) {
	exp := sc.exp
	if exp.Status.Phase.Terminal() {
		return ctrl.Result{}, false, nil
	}
	var list cxv1.CXExperimentList
	var opts []client.ListOption
	switch {
	case exp.Spec.Traffic.GatewayAPI != nil:
		opts = []client.ListOption{client.InNamespace(exp.Namespace), client.MatchingFields{indexRoute: exp.Spec.Traffic.GatewayAPI.HTTPRoute}}
	default:
		opts = []client.ListOption{client.InNamespace(exp.Namespace), client.MatchingFields{indexDeployments: exp.Spec.ControlVariant().Deployment}}
	}
	if err := r.List(ctx, &list, opts...); err != nil {
		return ctrl.Result{}, true, fmt.Errorf("list experiments for conflicts: %w", err)
	}
	for i := range list.Items {
		other := &list.Items[i]
		if other.UID == exp.UID || !other.DeletionTimestamp.IsZero() ||
			other.Status.Phase == cxv1.PhaseRolledBack || other.Status.Phase == cxv1.PhaseFailed {
			continue
		}
		if exp.Spec.Traffic.GatewayAPI != nil && exp.Spec.ControlVariant().Service.Name != other.Spec.ControlVariant().Service.Name {
			continue // different rules of the route
		}
		if !overlaps(exp, other) || !earlier(other, exp) {
			continue
		}
		target := "Deployment " + exp.Spec.ControlVariant().Deployment
		if exp.Spec.Traffic.GatewayAPI != nil {
			target = "HTTPRoute " + exp.Spec.Traffic.GatewayAPI.HTTPRoute
		}
		segs := "all its traffic"
		if len(other.Spec.Segments) > 0 {
			segs = "segment(s) " + strings.Join(other.Spec.Segments, ", ")
		}
		phase := other.Status.Phase
		if phase == "" {
			phase = cxv1.PhasePending
		}
		r.fail(sc, cxv1.ReasonConflict, fmt.Sprintf(
			"experiment %s (%s, created earlier) already routes %s of %s; wait until it ends or is deleted, then retry (annotation %s), or target other segments",
			other.Name, phase, segs, target, cxv1.AnnotationRetry))
		return ctrl.Result{}, false, nil
	}
	return ctrl.Result{}, false, nil
}

// secretValue reads a Secret key without the cache (only labelled Secrets
// are cached).
func (r *CXExperimentReconciler) secretValue(ctx context.Context, ns string, ref *cxv1.SecretKeyRef) (string, error) {
	if ref == nil {
		return "", nil
	}
	s := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, s); err != nil {
		return "", fmt.Errorf("read Secret %s for the Prometheus bearer token: %w", ref.Name, err)
	}
	v, ok := s.Data[ref.Key]
	if !ok {
		return "", fmt.Errorf("secret %s has no key %s", ref.Name, ref.Key)
	}
	return strings.TrimSpace(string(v)), nil
}
