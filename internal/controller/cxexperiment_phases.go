package controller

import (
	"context"
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

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/metrics"
	"github.com/rapport-dev/rapport/internal/rollout"
	"github.com/rapport-dev/rapport/internal/routing"
	"github.com/rapport-dev/rapport/internal/routing/gatewayapi"
	"github.com/rapport-dev/rapport/internal/routing/traffic"
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
	sc.decision = out
	return ctrl.Result{RequeueAfter: out.RequeueAfter}, false, nil
}

// plan turns the status into the traffic split to apply.
func plan(exp *cxv1.CXExperiment, segments map[string]*cxv1.CustomerSegment) traffic.Plan {
	weights := rollout.DesiredWeights(&exp.Spec, &exp.Status)
	var p traffic.Plan
	if g := exp.Spec.Traffic.GatewayAPI; g != nil {
		p.Stickiness, p.TagRequests = g.Stickiness, g.TagRequests
	}
	control := exp.Spec.ControlVariant()
	order := append([]cxv1.Variant{*control}, slices.DeleteFunc(slices.Clone(exp.Spec.Variants), func(v cxv1.Variant) bool { return v.Control })...)
	for _, name := range exp.Spec.SegmentNames() {
		sr := traffic.SegmentRoute{Segment: name}
		if seg, ok := segments[name]; ok {
			sr.Match = &seg.Spec.Match
		}
		for _, v := range order {
			b := traffic.Backend{Variant: v.Name, Control: v.Control, Deployment: v.Deployment, Weight: weights[name][v.Name]}
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
}

// route applies the split the status calls for, in four steps: record what
// a change must be able to undo, diff the plan against the cluster, write
// the status ahead, apply. The write-ahead records the decision a change
// carries (with optimistic locking) before the router writes anything. So
// traffic never reflects a decision that status does not hold, and a
// reconcile that started from a stale copy cannot write the route at all: a
// rollback, once applied, is never undone by a later reconcile that judges
// again (the measurement failing, or the cache lagging after an API outage).
func (r *CXExperimentReconciler) route(ctx context.Context, sc *scope) (ctrl.Result, bool, error) {
	exp := sc.exp
	if exp.Status.Phase == cxv1.PhasePending || sc.router == nil || sc.keepTraffic {
		return ctrl.Result{}, false, nil
	}
	changes, err := r.diff(ctx, sc)
	if err == nil {
		sc.routed = routedApplied(exp)
		var stop bool
		if stop, err = r.applyAhead(ctx, sc, changes); stop {
			return ctrl.Result{}, true, err
		}
	}
	if err != nil {
		metrics.TrafficChanges.WithLabelValues(exp.Namespace, exp.Name, "failed").Inc()
		reason := traffic.ReasonOf(err, cxv1.ReasonApplyFailed)
		sc.routed = failed(reason, "%v", err)
		if slices.Contains(permanentRouteErrors, reason) && !exp.Status.Phase.Terminal() {
			// Retrying cannot help: fail, and put everything back on the
			// control now, written ahead like every traffic change.
			r.fail(sc, reason, err.Error())
			restore, rerr := r.diff(ctx, sc)
			if rerr == nil {
				var stop bool
				if stop, rerr = r.applyAhead(ctx, sc, restore); stop {
					return ctrl.Result{}, true, rerr
				}
			}
			if rerr != nil {
				ctrl.LoggerFrom(ctx).Error(rerr, "restore traffic after a routing failure")
			}
			return ctrl.Result{}, false, nil
		}
		sc.routeErr = err
		return ctrl.Result{}, false, nil
	}
	if len(changes) > 0 {
		metrics.TrafficChanges.WithLabelValues(exp.Namespace, exp.Name, "applied").Inc()
	}
	recordRestored(exp, sc.decision.RolledBack, sc.lastResponseAt, r.Clock.Now())
	return ctrl.Result{}, false, nil
}

// diff records in status what the first change must be able to undo (the
// user's rules or replica counts) and returns the changes that route the
// split the status calls for.
func (r *CXExperimentReconciler) diff(ctx context.Context, sc *scope) ([]traffic.Change, error) {
	ts, err := sc.router.Record(ctx, sc.exp)
	if err != nil {
		return nil, err
	}
	sc.exp.Status.Traffic = ts
	return sc.router.Diff(ctx, sc.exp, plan(sc.exp, sc.segments))
}

// applyAhead writes the status ahead of the changes, then makes them. When
// the write-ahead fails nothing is changed and stop is true: the reconcile
// ends without another status write and runs again on fresh state (or, for
// an experiment that is gone, ends for good: its finalizer restored the
// route). Otherwise err is the changes' error.
func (r *CXExperimentReconciler) applyAhead(ctx context.Context, sc *scope, changes []traffic.Change) (stop bool, err error) {
	if len(changes) == 0 {
		return false, nil
	}
	if err := r.writeAhead(ctx, sc); err != nil {
		sc.skipStatus = true
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return true, fmt.Errorf("record the decision before changing traffic: %w", err)
	}
	return false, traffic.Apply(ctx, changes)
}

// routedApplied is the TrafficRouted outcome of an applied split: written
// ahead with the decision, and again once the route write returned.
func routedApplied(exp *cxv1.CXExperiment) outcome {
	return succeeded(cxv1.ReasonApplied, "traffic split applied: %s", formatWeights(exp))
}

// writeAhead records the status a traffic change carries, as it will read
// once the change is applied (sc.routed says how), right before the router
// writes. A successful change then costs no further status write (except a rollback's restore
// time, stamped after the route write returns). If the router's write fails
// after this, the reconcile's final status write says so.
func (r *CXExperimentReconciler) writeAhead(ctx context.Context, sc *scope) error {
	exp := sc.exp
	applied := metav1.NewTime(r.Clock.Now())
	exp.Status.Traffic.AppliedAt = &applied
	// As it will read once applied, observedGeneration included (a second
	// write only for that would double the writes of a start); if the
	// router's write fails, the final write takes it back.
	setStatus(sc, nil, true)
	return r.writeStatus(ctx, sc, false)
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
