package controller

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/routing/traffic"
)

// routeExperiment is a Gateway API experiment with two segments and two
// variants besides the control, at step 2 (weight 20).
func routeExperiment(phase cxv1.ExperimentPhase) *cxv1.CXExperiment {
	exp := &cxv1.CXExperiment{}
	exp.Spec.Variants = []cxv1.Variant{
		{Name: "one-page", Service: &cxv1.ServiceRef{Name: "checkout-v2", Port: 8080}},
		{Name: "control", Control: true, Service: &cxv1.ServiceRef{Name: "checkout-v1", Port: 8080}},
		{Name: "express", Service: &cxv1.ServiceRef{Name: "checkout-v3", Port: 8080}},
	}
	exp.Spec.Segments = []string{"enterprise", "new-customers"}
	exp.Spec.Steps = []cxv1.Step{{Weight: 10}, {Weight: 20}}
	exp.Spec.Traffic.GatewayAPI = &cxv1.GatewayAPITraffic{HTTPRoute: "checkout", TagRequests: true}
	exp.Status.Phase, exp.Status.CurrentStep = phase, 2
	for _, seg := range exp.Spec.Segments {
		exp.Status.Segments = append(exp.Status.Segments, cxv1.SegmentStatus{Name: seg, Variants: []cxv1.VariantStatus{
			{Name: "control", State: cxv1.StateControl}, {Name: "one-page", State: cxv1.StateActive}, {Name: "express", State: cxv1.StateActive},
		}})
	}
	return exp
}

func backends(sr traffic.SegmentRoute) string {
	out := ""
	for _, b := range sr.Backends {
		out += fmt.Sprintf("%s:%s:%d ", b.Variant, b.Service, b.Weight)
	}
	return out
}

func TestPlan(t *testing.T) {
	segments := map[string]*cxv1.CustomerSegment{"enterprise": {Spec: cxv1.CustomerSegmentSpec{Match: cxv1.SegmentMatch{
		Headers: []cxv1.HeaderMatch{{Name: "x-customer-tier", Value: "enterprise"}}}}}}
	rolledBack := routeExperiment(cxv1.PhaseProgressing)
	rolledBack.Status.Segments[1].Variants[1].State = cxv1.StateRolledBack
	promoted := routeExperiment(cxv1.PhaseSucceeded)
	promoted.Status.Segments[0].Variants[2].State = cxv1.StatePromoted
	promoted.Status.Segments[0].Variants[1].State = cxv1.StateRetired
	promoted.Status.Segments[1].Variants[1].State = cxv1.StateRetired
	promoted.Status.Segments[1].Variants[2].State = cxv1.StateRetired
	for _, tc := range []struct {
		name string
		exp  *cxv1.CXExperiment
		want [2]string
	}{
		{"step 2: each variant 20%, the control the rest; the control first", routeExperiment(cxv1.PhaseProgressing),
			[2]string{"control:checkout-v1:60 one-page:checkout-v2:20 express:checkout-v3:20 ", "control:checkout-v1:60 one-page:checkout-v2:20 express:checkout-v3:20 "}},
		{"a variant rolled back in one segment", rolledBack,
			[2]string{"control:checkout-v1:60 one-page:checkout-v2:20 express:checkout-v3:20 ", "control:checkout-v1:80 one-page:checkout-v2:0 express:checkout-v3:20 "}},
		{"promoted in one segment, the control kept in the other", promoted,
			[2]string{"control:checkout-v1:0 one-page:checkout-v2:0 express:checkout-v3:100 ", "control:checkout-v1:100 one-page:checkout-v2:0 express:checkout-v3:0 "}},
		{"failed: everything on the control", routeExperiment(cxv1.PhaseFailed),
			[2]string{"control:checkout-v1:100 one-page:checkout-v2:0 express:checkout-v3:0 ", "control:checkout-v1:100 one-page:checkout-v2:0 express:checkout-v3:0 "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := plan(tc.exp, segments)
			if len(p.Segments) != 2 || p.Segments[0].Segment != "enterprise" || p.Segments[1].Segment != "new-customers" {
				t.Fatalf("segments %+v, want enterprise and new-customers in spec order", p.Segments)
			}
			for i := range 2 {
				if got := backends(p.Segments[i]); got != tc.want[i] {
					t.Errorf("%s: %s, want %s", p.Segments[i].Segment, got, tc.want[i])
				}
			}
			if p.Segments[0].Match == nil || p.Segments[1].Match != nil {
				t.Errorf("matches: enterprise %v (resolved), new-customers %v (not given)", p.Segments[0].Match, p.Segments[1].Match)
			}
			if !p.TagRequests || p.Stickiness != nil {
				t.Errorf("tagRequests %v, stickiness %v: want spec.traffic.gatewayAPI's", p.TagRequests, p.Stickiness)
			}
		})
	}
}

func TestRecordRestored(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	decisive := t0.Add(-2 * time.Second)
	earlier := metav1.NewMicroTime(t0.Add(-time.Hour))
	exp := &cxv1.CXExperiment{}
	exp.Status.Rollbacks = []cxv1.Rollback{
		// Restored earlier: left as it is.
		{Variant: "one-page", Segment: "enterprise", TrafficRestoredAt: &earlier, DecisiveResponseAt: &earlier},
		// Decided now: the decisive response and the restore are stamped.
		{Variant: "one-page", Segment: "new-customers"},
		// Decided earlier, its route write failed then: restored now, no
		// decisive response (it is not this reconcile's decision).
		{Variant: "express", Segment: "enterprise"},
	}
	decidedNow := []cxv1.Rollback{{Variant: "one-page", Segment: "new-customers"}}
	recordRestored(exp, decidedNow, decisive, t0)

	rb := exp.Status.Rollbacks
	if !rb[0].TrafficRestoredAt.Equal(&earlier) {
		t.Errorf("an earlier restore was stamped again: %v", rb[0].TrafficRestoredAt)
	}
	if rb[1].TrafficRestoredAt == nil || !rb[1].TrafficRestoredAt.Time.Equal(t0) || rb[1].DecisiveResponseAt == nil || !rb[1].DecisiveResponseAt.Time.Equal(decisive) {
		t.Errorf("this reconcile's rollback: restored %v, decisive %v; want %v and %v", rb[1].TrafficRestoredAt, rb[1].DecisiveResponseAt, t0, decisive)
	}
	if rb[2].TrafficRestoredAt == nil || rb[2].DecisiveResponseAt != nil {
		t.Errorf("an earlier rollback restored now: restored %v, decisive %v; want now and none", rb[2].TrafficRestoredAt, rb[2].DecisiveResponseAt)
	}

	// A source that does not know commit times (Prometheus) stamps no
	// decisive response.
	exp.Status.Rollbacks = []cxv1.Rollback{{Variant: "one-page", Segment: "new-customers"}}
	recordRestored(exp, decidedNow, time.Time{}, t0)
	if exp.Status.Rollbacks[0].DecisiveResponseAt != nil || exp.Status.Rollbacks[0].TrafficRestoredAt == nil {
		t.Errorf("without a commit time: %+v", exp.Status.Rollbacks[0])
	}
}

func TestRecordApplied(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	earlier := metav1.NewMicroTime(t0.Add(-time.Minute))
	epochs := func(lastApplied *metav1.MicroTime) []cxv1.EpochStatus {
		return []cxv1.EpochStatus{{Epoch: 1, AppliedAt: &earlier}, {Epoch: 2, AppliedAt: lastApplied}}
	}
	for _, tt := range []struct {
		name  string
		phase cxv1.ExperimentPhase
		last  *metav1.MicroTime
		want  *time.Time
	}{
		{"a new epoch: stamped now", cxv1.PhaseProgressing, nil, &t0},
		{"paused: stamped now", cxv1.PhasePaused, nil, &t0},
		{"already applied: kept", cxv1.PhaseProgressing, &earlier, &earlier.Time},
		{"ended: left alone", cxv1.PhaseSucceeded, nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := &cxv1.CXExperimentStatus{Phase: tt.phase, Segments: []cxv1.SegmentStatus{
				{Name: "enterprise", Epochs: epochs(tt.last)}, {Name: "legacy"}}}
			recordApplied(st, t0)
			got := st.Segments[0].Epochs[1].AppliedAt
			if (got == nil) != (tt.want == nil) || (got != nil && !got.Time.Equal(*tt.want)) {
				t.Errorf("appliedAt %v, want %v", got, tt.want)
			}
			if !st.Segments[0].Epochs[0].AppliedAt.Equal(&earlier) {
				t.Errorf("a past epoch was stamped again: %v", st.Segments[0].Epochs[0].AppliedAt)
			}
		})
	}
}

func TestFormatWeights(t *testing.T) {
	exp := routeExperiment(cxv1.PhaseProgressing)
	exp.Status.Segments[0].Variants[0].Weight, exp.Status.Segments[0].Variants[1].Weight = 80, 20
	want := "enterprise: control 80%, one-page 20%, express 0%; new-customers: control 0%, one-page 0%, express 0%"
	if got := formatWeights(exp); got != want {
		t.Fatalf("formatWeights = %q, want %q", got, want)
	}
}
