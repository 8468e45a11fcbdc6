package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

func TestOverlaps(t *testing.T) {
	exp := func(segments ...string) *cxv1.CXExperiment {
		return &cxv1.CXExperiment{Spec: cxv1.CXExperimentSpec{Segments: segments}}
	}
	for _, tc := range []struct {
		name string
		a, b *cxv1.CXExperiment
		want bool
	}{
		{"the same segment", exp("enterprise"), exp("enterprise", "new-customers"), true},
		{"other segments", exp("enterprise"), exp("new-customers"), false},
		{"all traffic overlaps any segment", exp(), exp("new-customers"), true},
		{"any segment overlaps all traffic", exp("enterprise"), exp(), true},
		{"all traffic twice", exp(), exp(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := overlaps(tc.a, tc.b); got != tc.want {
				t.Errorf("overlaps = %v, want %v", got, tc.want)
			}
			if got := overlaps(tc.b, tc.a); got != tc.want {
				t.Errorf("overlaps is not symmetric: %v", got)
			}
		})
	}
}

func TestEarlier(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	exp := func(name string, created time.Time) *cxv1.CXExperiment {
		return &cxv1.CXExperiment{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created)}}
	}
	first, second := exp("second", t0), exp("first", t0.Add(time.Second))
	if !earlier(first, second) || earlier(second, first) {
		t.Error("the experiment created first is the earlier one, whatever its name")
	}
	a, b := exp("a", t0), exp("b", t0)
	if !earlier(a, b) || earlier(b, a) {
		t.Error("created in the same second: the name decides")
	}
	if earlier(a, a) {
		t.Error("an experiment is not earlier than itself")
	}
}
