package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// TestMeasurementRecord checks when a measurement costs a status write:
// at once for a changed verdict, at most once per interval for new counts,
// never for unchanged counts (except a Prometheus poll).
func TestMeasurementRecord(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	interval := 30 * time.Second
	status := func(responses int64, verdict cxv1.Verdict, measuredAt *time.Time) cxv1.CXExperimentStatus {
		st := cxv1.CXExperimentStatus{Segments: []cxv1.SegmentStatus{{Name: "enterprise", Variants: []cxv1.VariantStatus{
			{Name: "one-page", Responses: responses, Verdict: verdict},
		}}}}
		if measuredAt != nil {
			m := metav1.NewTime(*measuredAt)
			st.MeasuredAt = &m
		}
		return st
	}
	fields := func(responses int64, verdict cxv1.Verdict) map[string]segmentFields {
		return map[string]segmentFields{"enterprise": {variants: map[string]variantFields{"one-page": {responses: responses, verdict: verdict}}}}
	}
	tenSecondsAgo := t0.Add(-10 * time.Second)
	for _, tc := range []struct {
		name          string
		before        cxv1.CXExperimentStatus
		m             measurement
		wantResponses int64
		wantVerdict   cxv1.Verdict
		wantMeasured  bool // measuredAt set to now
		wantRequeue   time.Duration
	}{
		{
			name:          "verdict changed: written at once, although not due",
			before:        status(100, cxv1.VerdictInsufficientData, &tenSecondsAgo),
			m:             measurement{fields: fields(900, cxv1.VerdictInferior), due: false, interval: interval},
			wantResponses: 900, wantVerdict: cxv1.VerdictInferior, wantMeasured: true,
		},
		{
			name:          "new counts, not due: held back, come back when due",
			before:        status(100, cxv1.VerdictInsufficientData, &tenSecondsAgo),
			m:             measurement{fields: fields(150, cxv1.VerdictInsufficientData), due: false, interval: interval},
			wantResponses: 100, wantVerdict: cxv1.VerdictInsufficientData, wantRequeue: 20 * time.Second,
		},
		{
			name:          "new counts, due: written",
			before:        status(100, cxv1.VerdictInsufficientData, &tenSecondsAgo),
			m:             measurement{fields: fields(150, cxv1.VerdictInsufficientData), due: true, interval: interval},
			wantResponses: 150, wantVerdict: cxv1.VerdictInsufficientData, wantMeasured: true,
		},
		{
			name:          "same counts, due: no write",
			before:        status(100, cxv1.VerdictInsufficientData, &tenSecondsAgo),
			m:             measurement{fields: fields(100, cxv1.VerdictInsufficientData), due: true, interval: interval},
			wantResponses: 100, wantVerdict: cxv1.VerdictInsufficientData,
		},
		{
			name:          "same counts, due, polled: the poll is recorded",
			before:        status(100, cxv1.VerdictInsufficientData, &tenSecondsAgo),
			m:             measurement{fields: fields(100, cxv1.VerdictInsufficientData), due: true, polled: true, interval: interval},
			wantResponses: 100, wantVerdict: cxv1.VerdictInsufficientData, wantMeasured: true,
		},
		{
			name:          "first measurement: written",
			before:        status(0, "", nil),
			m:             measurement{fields: fields(10, cxv1.VerdictInsufficientData), due: true, interval: interval},
			wantResponses: 10, wantVerdict: cxv1.VerdictInsufficientData, wantMeasured: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.before.DeepCopy()
			requeue := tc.m.record(st, t0)
			v := st.Segments[0].Variants[0]
			if v.Responses != tc.wantResponses || v.Verdict != tc.wantVerdict {
				t.Errorf("status shows %d responses, verdict %q; want %d, %q", v.Responses, v.Verdict, tc.wantResponses, tc.wantVerdict)
			}
			measured := st.MeasuredAt != nil && st.MeasuredAt.Time.Equal(t0)
			if measured != tc.wantMeasured {
				t.Errorf("measuredAt = %v; want it set to now: %v", st.MeasuredAt, tc.wantMeasured)
			}
			if requeue != tc.wantRequeue {
				t.Errorf("requeue after %v; want %v", requeue, tc.wantRequeue)
			}
		})
	}
}
