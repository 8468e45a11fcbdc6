package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxEpochs is the most allocation epochs a segment records in one run. A run
// that changes a segment's weights more often folds further changes into its
// last epoch (the comparison then pools them; see docs/measurement.md).
const MaxEpochs = 64

// VariantWeight is one variant's share of a segment's traffic.
type VariantWeight struct {
	// variant name.
	// +required
	Variant string `json:"variant"`

	// weight in percent of the segment's traffic.
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Weight int32 `json:"weight"`
}

// EpochStatus is one allocation epoch of a segment: a period during which
// its weights did not change. Satisfaction is compared within each epoch
// (customers served under the same weights) and the epochs are combined, so
// a change of satisfaction that both variants share while the weights ramp
// never looks like a difference between them.
type EpochStatus struct {
	// epoch number within the run (1, 2, ...).
	// +required
	// +kubebuilder:validation:Minimum=1
	Epoch int32 `json:"epoch"`

	// startedAt is when the weights of the epoch were decided; it ends when
	// the next epoch starts.
	// +required
	StartedAt metav1.MicroTime `json:"startedAt"`

	// weights of every variant during the epoch, the control first.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	Weights []VariantWeight `json:"weights,omitempty"`

	// appliedAt is when the traffic was seen to carry the weights: stamped
	// after the route (or the replica counts) took them. Between startedAt
	// and appliedAt the weights customers were served under are not known
	// (normally milliseconds; longer when the controller stopped or lost
	// the API server between the two writes), so the collector counts
	// responses without a known epoch from that span in epoch 0, which the
	// sample-ratio test skips.
	// +optional
	AppliedAt *metav1.MicroTime `json:"appliedAt,omitempty"`
}

// RecentWindow is a restart of the recent-evidence test of a variant: it
// judges only the responses counted after it began, so a regression that
// starts mid-run is not diluted by the good answers before it. Rapport opens
// and drops windows itself; they are recorded so a restart of the
// controller continues the same test.
type RecentWindow struct {
	// index of the window within the run (1, 2, ...); window k spends a
	// 1/(k(k+1)) share of the recent-evidence error budget.
	// +required
	// +kubebuilder:validation:Minimum=1
	Index int32 `json:"index"`

	// epoch the window began in.
	// +required
	Epoch int32 `json:"epoch"`

	// control and variant are the counts per score of that epoch when the
	// window began (excluded from it).
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=11
	Control []int64 `json:"control"`
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=11
	Variant []int64 `json:"variant"`
}

// SampleRatioStatus is the sample-ratio-mismatch test of a segment: do the
// responses per variant match the shares the weights predict?
type SampleRatioStatus struct {
	// mismatch is true once the always-valid test found the responses per
	// variant inconsistent with the weights. The segment then cannot advance
	// or be promoted automatically; rollbacks still apply.
	// +optional
	Mismatch bool `json:"mismatch,omitempty"`

	// evidence is the log Bayes factor against the expected shares and the
	// threshold it is compared with, e.g. "2.1 of 6.9".
	// +optional
	Evidence string `json:"evidence,omitempty"`

	// epoch whose shares are reported: the one with the strongest evidence.
	// +optional
	Epoch int32 `json:"epoch,omitempty"`

	// shares lists, for that epoch, each variant's observed share of the
	// responses and the share its weight predicts, e.g.
	// "control 81.2% (expected 75.0%), one-page 18.8% (expected 25.0%)".
	// +optional
	Shares string `json:"shares,omitempty"`
}

// RunSettings are the satisfaction settings a run is judged by: those of
// spec.satisfaction when the run started (defaults applied). Editing
// spec.satisfaction during a run never re-judges the run's evidence under
// other thresholds; the edit applies to the next run.
type RunSettings struct {
	// metric judged (CSAT or NPS).
	// +required
	Metric SatisfactionMetricKind `json:"metric"`

	// scaleMax is the top of the scale (10 for NPS).
	// +required
	ScaleMax int32 `json:"scaleMax"`

	// satisfiedAtOrAbove is the lowest satisfied CSAT score (0 for NPS).
	// +optional
	SatisfiedAtOrAbove int32 `json:"satisfiedAtOrAbove,omitempty"`

	// minimum is the absolute floor in points, when set.
	// +optional
	Minimum *string `json:"minimum,omitempty"`

	// maxDrop in points.
	// +required
	MaxDrop string `json:"maxDrop"`

	// confidence in percent.
	// +required
	Confidence string `json:"confidence"`

	// minResponses per variant and segment before any verdict.
	// +required
	MinResponses int32 `json:"minResponses"`
}
