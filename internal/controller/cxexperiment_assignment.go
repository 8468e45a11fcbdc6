package controller

import (
	"context"
	"fmt"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/assignment"
	"github.com/rapport-dev/rapport/internal/routing/traffic"
)

// The assignment key Secrets: created here, owned by their experiment.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create

// needsAssignmentKey reports whether answers to exp may carry a signed
// assignment: the gateway sets the cookie, or browsers post answers (apps
// that set the cookie themselves sign with the same key).
func needsAssignmentKey(exp *cxv1.CXExperiment) bool {
	g := exp.Spec.Traffic.GatewayAPI
	return (g != nil && g.AssignmentCookie != nil) || exp.Spec.Satisfaction.Source.Collector.BrowserEnabled()
}

// assignmentCookie makes sure exp has its signing key (a Secret it owns)
// when its answers may carry a signed assignment, and returns the cookie
// the router sets on each variant's responses, or nil when the gateway sets
// none.
func (r *CXExperimentReconciler) assignmentCookie(ctx context.Context, exp *cxv1.CXExperiment) (*traffic.AssignmentCookie, error) {
	if !needsAssignmentKey(exp) {
		return nil, nil
	}
	if r.AssignmentKeys == nil {
		return nil, fmt.Errorf("the manager has no assignment key store; experiments with signed assignments cannot run")
	}
	key, err := r.AssignmentKeys.Ensure(ctx, exp)
	if err != nil {
		return nil, fmt.Errorf("assignment key: %w", err)
	}
	g := exp.Spec.Traffic.GatewayAPI
	if g == nil || g.AssignmentCookie == nil {
		return nil, nil
	}
	c := g.AssignmentCookie
	out := &traffic.AssignmentCookie{Name: c.Name, MaxAge: assignment.DefaultMaxAge, Secure: c.Secure == nil || *c.Secure}
	if out.Name == "" {
		out.Name = assignment.CookieName(exp.Name)
	}
	if c.MaxAge != nil {
		out.MaxAge = c.MaxAge.Duration
	}
	ns, name, run := exp.Namespace, exp.Name, exp.Status.Run
	epochs := map[string]int32{}
	for _, s := range exp.Spec.SegmentNames() {
		epochs[s] = assignmentEpoch(exp, s)
	}
	out.Value = func(segment, variant string) string {
		return assignment.Sign(key, assignment.Assignment{Namespace: ns, Experiment: name, Run: run, Segment: segment, Variant: variant, Epoch: epochs[segment]})
	}
	return out, nil
}

// assignmentEpoch is the allocation epoch of segment that the cookie
// records: status.segments[].epoch, the epoch whose weights the route about
// to be written carries (0 before the run has epochs: the collector then
// assigns the epoch from the answer's time).
func assignmentEpoch(exp *cxv1.CXExperiment, segment string) int32 {
	for _, s := range exp.Status.Segments {
		if s.Name == segment {
			return s.Epoch
		}
	}
	return 0
}
