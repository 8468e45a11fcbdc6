package traffic

import (
	"context"
	"errors"
	"fmt"
	"testing"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

type recorded struct {
	name string
	log  *[]string
	err  error
}

func (c recorded) Apply(context.Context) error {
	*c.log = append(*c.log, c.name)
	return c.err
}

func TestApplyStopsAtTheFirstFailure(t *testing.T) {
	var log []string
	refused := errors.New("refused")
	err := Apply(context.Background(), []Change{recorded{"scale up v2", &log, nil}, recorded{"scale down v1", &log, refused}, recorded{"never", &log, nil}})
	if !errors.Is(err, refused) {
		t.Fatalf("Apply: %v, want the second change's error", err)
	}
	if fmt.Sprint(log) != "[scale up v2 scale down v1]" {
		t.Fatalf("changes made: %v", log)
	}
	if err := Apply(context.Background(), nil); err != nil {
		t.Fatalf("no changes: %v", err)
	}
}

func TestReasonOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"routing error", Errorf(cxv1.ReasonRouteLimitExceeded, "too many rules"), cxv1.ReasonRouteLimitExceeded},
		{"wrapped routing error", fmt.Errorf("apply: %w", Errorf(cxv1.ReasonNoControlRule, "no rule")), cxv1.ReasonNoControlRule},
		{"other error", errors.New("connection refused"), cxv1.ReasonApplyFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ReasonOf(tc.err, cxv1.ReasonApplyFailed); got != tc.want {
				t.Fatalf("ReasonOf = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestPlanAllControl(t *testing.T) {
	p := Plan{Segments: []SegmentRoute{
		{Segment: "enterprise", Backends: []Backend{{Variant: "control", Control: true, Weight: 100}, {Variant: "one-page", Weight: 0}}},
		{Segment: "new-customers", Backends: []Backend{{Variant: "control", Control: true, Weight: 90}, {Variant: "one-page", Weight: 10}}},
	}}
	if p.AllControl() {
		t.Fatal("a plan with a 10% variant is not all control")
	}
	if !p.Segments[0].AllControl() {
		t.Fatal("a segment with the variant at 0 is all control")
	}
}
