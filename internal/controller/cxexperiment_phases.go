package controller

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/metrics"
	"github.com/rapport-dev/rapport/internal/rollout"
	"github.com/rapport-dev/rapport/internal/routing"
)

func sprintf(format string, args ...any) string {
	if len(args) == 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
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

// resolve reads every object the spec names. A missing object keeps the
// experiment where it is (no traffic change) until it appears; an unusable
// one fails the experiment.
func (r *CXExperimentReconciler) resolve(ctx context.Context, sc *scope) (ctrl.Result, bool, error) {
	exp := sc.exp
	router, err := r.router(exp)
	if err != nil {
		sc.refs = failed(routing.ReasonOf(err, cxv1.ReasonInvalidSpec), "%s", err.Error())
		return ctrl.Result{RequeueAfter: requeueMissing}, true, nil
	}
	sc.router = router
	if exp.Status.Phase.Terminal() {
		return ctrl.Result{}, false, nil // nothing left to read: only retry or restore
	}
	missing := func(reason, format string, args ...any) (ctrl.Result, bool, error) {
		sc.refs = failed(reason, format, args...)
		return ctrl.Result{RequeueAfter: requeueMissing}, true, nil
	}
	meta := func(apiVersion, kind, name string) error {
		m := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}}
		return r.Get(ctx, types.NamespacedName{Namespace: exp.Namespace, Name: name}, m)
	}
	if exp.Spec.Traffic.GatewayAPI != nil {
		route := &gwv1.HTTPRoute{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: exp.Namespace, Name: exp.Spec.Traffic.GatewayAPI.HTTPRoute}, route); err != nil {
			if apierrors.IsNotFound(err) {
				return missing(cxv1.ReasonRouteNotFound, "HTTPRoute %s not found in namespace %s; create it, or recreate the experiment with the right spec.traffic.gatewayAPI.httpRoute (the field is immutable)",
					exp.Spec.Traffic.GatewayAPI.HTTPRoute, exp.Namespace)
			}
			return ctrl.Result{}, true, err
		}
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
		if err := ValidateSegment(seg); err != nil {
			r.fail(sc, cxv1.ReasonSegmentInvalid, fmt.Sprintf("CustomerSegment %s cannot be routed: %v", name, err))
			return ctrl.Result{}, false, nil
		}
		sc.segments[name] = seg
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

// decide runs the rollout state machine.
func (r *CXExperimentReconciler) decide(_ context.Context, sc *scope) (ctrl.Result, bool, error) {
	a := sc.exp.Annotations
	out := rollout.Decide(rollout.Input{
		Spec:       &sc.exp.Spec,
		Status:     &sc.exp.Status,
		Judgements: sc.judgements,
		Breaches:   sc.breaches,
		Actions:    rollout.Actions{Promote: a[cxv1.AnnotationPromote], Abort: a[cxv1.AnnotationAbort], Retry: a[cxv1.AnnotationRetry]},
		Now:        sc.now,
	})
	sc.exp.Status = out.Status
	refresh := sc.measurement.record(&sc.exp.Status, sc.now)
	sc.decision = out
	return lowestRequeue(ctrl.Result{RequeueAfter: out.RequeueAfter}, ctrl.Result{RequeueAfter: refresh}), false, nil
}

// plan turns the status into the traffic split to apply.
func plan(exp *cxv1.CXExperiment, segments map[string]*cxv1.CustomerSegment) routing.Plan {
	weights := rollout.DesiredWeights(&exp.Spec, &exp.Status)
	var p routing.Plan
	if g := exp.Spec.Traffic.GatewayAPI; g != nil {
		p.Stickiness, p.TagRequests = g.Stickiness, g.TagRequests
	}
	control := exp.Spec.ControlVariant()
	order := append([]cxv1.Variant{*control}, slices.DeleteFunc(slices.Clone(exp.Spec.Variants), func(v cxv1.Variant) bool { return v.Control })...)
	for _, name := range exp.Spec.SegmentNames() {
		sr := routing.SegmentRoute{Segment: name}
		if seg, ok := segments[name]; ok {
			sr.Match = &seg.Spec.Match
		}
		for _, v := range order {
			b := routing.Backend{Variant: v.Name, Control: v.Control, Deployment: v.Deployment, Weight: weights[name][v.Name]}
			if v.Service != nil {
				b.Service, b.Port = v.Service.Name, v.Service.Port
			}
			sr.Backends = append(sr.Backends, b)
		}
		p.Segments = append(p.Segments, sr)
	}
	return p
}

// permanentRouteErrors fail the experiment: retrying cannot help until the
// user changes something.
var permanentRouteErrors = []string{
	cxv1.ReasonRouteLimitExceeded, cxv1.ReasonNoControlRule, cxv1.ReasonSegmentInvalid, cxv1.ReasonStickinessUnsupported,
	cxv1.ReasonAssignmentCookieConflict,
}

// route applies the split the status calls for. A change is written ahead:
// the decision it carries is recorded in status first (with optimistic
// locking), then the route is written. So traffic never reflects a decision
// that status does not hold, and a reconcile that started from a stale copy
// cannot write the route at all: a rollback, once applied, is never undone
// by a later reconcile that judges again (the measurement failing, or the
// cache lagging after an API outage).
func (r *CXExperimentReconciler) route(ctx context.Context, sc *scope) (ctrl.Result, bool, error) {
	exp := sc.exp
	if exp.Status.Phase == cxv1.PhasePending || sc.router == nil {
		return ctrl.Result{}, false, nil
	}
	if exp.Spec.Traffic.GatewayAPI != nil && len(exp.Spec.Segments) > 0 && len(sc.segments) != len(exp.Spec.Segments) {
		// Terminal phases skip resolve: segments are only needed to route
		// variants, and a terminal split routes none (or keeps the child route).
		if err := r.loadSegments(ctx, sc); err != nil {
			sc.routed = failed(cxv1.ReasonSegmentNotFound, "%v", err)
			return ctrl.Result{RequeueAfter: requeueMissing}, false, nil
		}
	}
	// Originals of the user's rules or replica counts go into status with the
	// write-ahead, before the first change.
	ts, err := sc.router.Record(ctx, exp)
	changed := false
	if err == nil {
		exp.Status.Traffic = ts
		p := plan(exp, sc.segments)
		p.BeforeWrite = func(ctx context.Context) error { return r.writeAhead(ctx, sc) }
		if p.Assignment, err = r.assignmentCookie(ctx, exp); err == nil {
			changed, err = sc.router.Apply(ctx, exp, p)
		}
	}
	var ahead *writeAheadError
	if errors.As(err, &ahead) {
		// Nothing was written; the reconcile runs again on fresh state (or,
		// for an experiment that is gone, ends: its finalizer restored the route).
		sc.skipStatus = true
		if apierrors.IsNotFound(ahead.err) {
			return ctrl.Result{}, true, nil
		}
		return ctrl.Result{}, true, ahead.err
	}
	if err != nil {
		metrics.TrafficChanges.WithLabelValues(exp.Namespace, exp.Name, "failed").Inc()
		reason := routing.ReasonOf(err, cxv1.ReasonApplyFailed)
		if slices.Contains(permanentRouteErrors, reason) && !exp.Status.Phase.Terminal() {
			r.fail(sc, reason, err.Error())
			// Best effort: put everything back on the control now.
			if _, rerr := sc.router.Apply(ctx, exp, plan(exp, sc.segments)); rerr != nil {
				ctrl.LoggerFrom(ctx).Error(rerr, "restore traffic after a routing failure")
			}
			sc.routed = failed(reason, "%v", err)
			return ctrl.Result{}, false, nil
		}
		sc.routed = failed(reason, "%v", err)
		sc.routeErr = err
		return ctrl.Result{}, false, nil
	}
	if changed {
		metrics.TrafficChanges.WithLabelValues(exp.Namespace, exp.Name, "applied").Inc()
	}
	recordRestored(exp, sc.decision.RolledBack, sc.lastResponseAt, r.Clock.Now())
	sc.routed = routedApplied(exp)
	return ctrl.Result{}, false, nil
}

// routedApplied is the TrafficRouted outcome of an applied split: written
// ahead with the decision, and again once the route write returned.
func routedApplied(exp *cxv1.CXExperiment) outcome {
	return succeeded(cxv1.ReasonApplied, "traffic split applied: %s", formatWeights(exp))
}

// writeAheadError is a failed status write before a traffic change.
type writeAheadError struct{ err error }

func (e *writeAheadError) Error() string {
	return "record the decision before changing traffic: " + e.err.Error()
}
func (e *writeAheadError) Unwrap() error { return e.err }

// writeAhead records the status a traffic change carries, as it will read
// once the change is applied, right before the router writes. A successful
// change then costs no further status write (except a rollback's restore
// time, stamped after the route write returns). If the router's write fails
// after this, the reconcile's final status write says so.
func (r *CXExperimentReconciler) writeAhead(ctx context.Context, sc *scope) error {
	exp := sc.exp
	applied := metav1.NewTime(r.Clock.Now())
	exp.Status.Traffic.AppliedAt = &applied
	sc.routed = routedApplied(exp)
	setConditions(sc)
	if err := r.writeStatus(ctx, sc, false); err != nil {
		return &writeAheadError{err: err}
	}
	return nil
}

// recordRestored stamps the rollbacks whose traffic change is now applied
// (this reconcile's, or earlier ones whose route change had failed) and
// observes their latency from the decisive response.
func recordRestored(exp *cxv1.CXExperiment, decidedNow []cxv1.Rollback, lastResponseAt, now time.Time) {
	for i := range exp.Status.Rollbacks {
		rb := &exp.Status.Rollbacks[i]
		if rb.TrafficRestoredAt != nil {
			continue
		}
		if rb.DecisiveResponseAt == nil && !lastResponseAt.IsZero() && slices.ContainsFunc(decidedNow, func(d cxv1.Rollback) bool {
			return d.Segment == rb.Segment && d.Variant == rb.Variant
		}) {
			at := metav1.NewMicroTime(lastResponseAt)
			rb.DecisiveResponseAt = &at
		}
		restored := metav1.NewMicroTime(now)
		rb.TrafficRestoredAt = &restored
		if rb.DecisiveResponseAt != nil {
			metrics.DecisionLatency.Observe(now.Sub(rb.DecisiveResponseAt.Time).Seconds())
		}
	}
}

func (r *CXExperimentReconciler) loadSegments(ctx context.Context, sc *scope) error {
	sc.segments = map[string]*cxv1.CustomerSegment{}
	for _, name := range sc.exp.Spec.Segments {
		seg := &cxv1.CustomerSegment{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: sc.exp.Namespace, Name: name}, seg); err != nil {
			if apierrors.IsNotFound(err) && sc.exp.Status.Phase != cxv1.PhaseSucceeded {
				continue // nothing is routed to a variant: no match needed
			}
			return fmt.Errorf("CustomerSegment %s is needed to keep its promoted variant routed: %w", name, err)
		}
		sc.segments[name] = seg
	}
	return nil
}

// formatWeights renders the status weights for messages: "enterprise: control 95, one-page 5".
func formatWeights(exp *cxv1.CXExperiment) string {
	parts := make([]string, 0, len(exp.Status.Segments))
	for _, s := range exp.Status.Segments {
		var vs []string
		for _, v := range s.Variants {
			vs = append(vs, fmt.Sprintf("%s %d%%", v.Name, v.Weight))
		}
		parts = append(parts, s.Name+": "+strings.Join(vs, ", "))
	}
	return strings.Join(parts, "; ")
}

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
