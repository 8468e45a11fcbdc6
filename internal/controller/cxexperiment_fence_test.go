package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

func TestCollectorViewChanged(t *testing.T) {
	at := metav1.NewMicroTime(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	base := func() *cxv1.CXExperimentStatus {
		return &cxv1.CXExperimentStatus{
			Run: 1, Phase: cxv1.PhaseProgressing, CurrentStep: 1,
			Segments: []cxv1.SegmentStatus{{Name: "smb", Epoch: 1, Epochs: []cxv1.EpochStatus{{Epoch: 1, StartedAt: at}}}},
		}
	}
	tests := []struct {
		name   string
		change func(st *cxv1.CXExperimentStatus)
		want   bool
	}{
		{name: "nothing", change: func(*cxv1.CXExperimentStatus) {}},
		// What the collector does not read: no raise (each raise costs
		// the collector a conflict).
		{name: "a step without new weights", change: func(st *cxv1.CXExperimentStatus) { st.CurrentStep = 2 }},
		{name: "counts", change: func(st *cxv1.CXExperimentStatus) {
			st.Segments[0].Variants = []cxv1.VariantStatus{{Name: "control", Responses: 10}}
		}},
		{name: "a condition", change: func(st *cxv1.CXExperimentStatus) {
			st.Conditions = []metav1.Condition{{Type: cxv1.ConditionTrafficRouted, Status: metav1.ConditionTrue}}
		}},
		// What it counts by.
		{name: "a new run", change: func(st *cxv1.CXExperimentStatus) { st.Run = 2 }, want: true},
		{name: "the run ends", change: func(st *cxv1.CXExperimentStatus) { st.Phase = cxv1.PhaseRolledBack }, want: true},
		{name: "a new epoch", change: func(st *cxv1.CXExperimentStatus) {
			st.Segments[0].Epochs = append(st.Segments[0].Epochs, cxv1.EpochStatus{Epoch: 2, StartedAt: at})
		}, want: true},
		{name: "an epoch's weights applied", change: func(st *cxv1.CXExperimentStatus) { st.Segments[0].Epochs[0].AppliedAt = &at }, want: true},
		{name: "a segment more", change: func(st *cxv1.CXExperimentStatus) {
			st.Segments = append(st.Segments, cxv1.SegmentStatus{Name: "enterprise"})
		}, want: true},
		{name: "a segment renamed", change: func(st *cxv1.CXExperimentStatus) { st.Segments[0].Name = "enterprise" }, want: true},
		{name: "the run's settings", change: func(st *cxv1.CXExperimentStatus) { st.Settings = &cxv1.RunSettings{} }, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := base(), base()
			tt.change(b)
			if got := collectorViewChanged(a, b); got != tt.want {
				t.Errorf("collectorViewChanged = %v, want %v", got, tt.want)
			}
		})
	}
}
