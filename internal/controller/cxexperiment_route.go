package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/metrics"
	"github.com/rapport-dev/rapport/internal/rollout"
	"github.com/rapport-dev/rapport/internal/routing/traffic"
)

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
	cxv1.ReasonAssignmentCookieConflict,
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
	now := r.Clock.Now()
	recordRestored(exp, sc.decision.RolledBack, sc.lastResponseAt, now)
	recordApplied(&exp.Status, now)
	return ctrl.Result{}, false, nil
}

// recordApplied stamps appliedAt on each segment's current epoch that has
// none: the traffic now carries the weights status holds (the route write
// returned, or the route already had them). Until then the collector counts
// responses without a known epoch in epoch 0, as served under unknown
// weights.
func recordApplied(st *cxv1.CXExperimentStatus, now time.Time) {
	if st.Phase != cxv1.PhaseProgressing && st.Phase != cxv1.PhasePaused {
		return
	}
	for i := range st.Segments {
		eps := st.Segments[i].Epochs
		if n := len(eps); n > 0 && eps[n-1].AppliedAt == nil {
			at := metav1.NewMicroTime(now)
			eps[n-1].AppliedAt = &at
		}
	}
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
	p := plan(sc.exp, sc.segments)
	if p.Assignment, err = r.assignmentCookie(ctx, sc.exp); err != nil {
		return nil, err
	}
	return sc.router.Diff(ctx, sc.exp, p)
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
	// The collector must count the answers served under the new weights
	// by the status just written: the tally's fence goes up to it first.
	if err := r.raiseFence(ctx, sc.exp); err != nil {
		return true, fmt.Errorf("fence the tally before changing traffic: %w", err)
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
// writes; the reconcile's final write then stamps when it was applied, and
// says so if the router's write failed. Two things wait for the final
// write, so that a change whose route write keeps failing does not flap
// between healthy and failing at every retry as Argo CD and kstatus read it:
// observedGeneration (of status and conditions) advances only there, once
// the change succeeded; and a retry after a failed change keeps the
// conditions as they were read, still saying that traffic is not routed.
func (r *CXExperimentReconciler) writeAhead(ctx context.Context, sc *scope) error {
	exp := sc.exp
	applied := metav1.NewTime(r.Clock.Now())
	exp.Status.Traffic.AppliedAt = &applied
	if routed := meta.FindStatusCondition(sc.before.Conditions, cxv1.ConditionTrafficRouted); routed != nil && routed.Status == metav1.ConditionFalse {
		exp.Status.ObservedGeneration = sc.before.ObservedGeneration
		exp.Status.Conditions = slices.Clone(sc.before.Conditions)
	} else {
		setStatus(sc, nil, false)
	}
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
