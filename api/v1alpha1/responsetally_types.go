package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TallyCount is the number of responses at each score for one variant in one segment.
type TallyCount struct {
	// segment name ("all" for experiments without segments).
	// +required
	Segment string `json:"segment"`

	// variant name.
	// +required
	Variant string `json:"variant"`

	// scores[i] is the number of responses with score scoreMin+i, over the
	// whole run (the sum of epochs, plus responses counted before epochs
	// were recorded).
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=11
	Scores []int64 `json:"scores"`

	// epochs splits the counts by the allocation epoch in which the
	// customers were served (see CXExperiment status.segments[].epochs).
	// Counts in scores but in no epoch were recorded before epochs existed
	// and are read as one epoch of their own.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Epochs []EpochCount `json:"epochs,omitempty"`
}

// EpochCount is the number of responses at each score in one epoch.
type EpochCount struct {
	// epoch number (status.segments[].epochs[].epoch of the experiment).
	// +required
	// +kubebuilder:validation:Minimum=1
	Epoch int32 `json:"epoch"`

	// scores[i] is the number of responses with score scoreMin+i.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=11
	Scores []int64 `json:"scores"`
}

// ResponseTallySpec holds the counts of the responses accepted by the
// collector for one run of an experiment. Raw answers are never stored.
type ResponseTallySpec struct {
	// experiment is the CXExperiment the responses belong to.
	// +required
	Experiment string `json:"experiment"`

	// run is the experiment run the counts belong to (status.run).
	// +required
	Run int32 `json:"run"`

	// scoreMin is the score counted at scores[0] (1 for CSAT, 0 for NPS).
	// +required
	ScoreMin int32 `json:"scoreMin"`

	// total is the number of responses counted.
	// +optional
	Total int64 `json:"total,omitempty"`

	// counts per segment and variant.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=200
	Counts []TallyCount `json:"counts,omitempty"`

	// recentKeyDigests is a base64 string (standard encoding) holding the
	// digests of the most recent Idempotency-Key values, 8 bytes each,
	// oldest first (at most 1024 digests: 8 KiB). They are committed with the counts so a retried batch
	// is never counted twice, even across restarts and replicas. One packed
	// value costs the API server half as much per write as the list of
	// strings in recentKeys did.
	// +optional
	// +kubebuilder:validation:MaxLength=10924
	RecentKeyDigests []byte `json:"recentKeyDigests,omitempty"`

	// recentKeys is the list of 22-character key digests written by
	// Rapport before recentKeyDigests existed. Deprecated: the collector
	// reads it and moves its digests into recentKeyDigests at the next
	// commit; it writes it, in the same form, only while the installed CRD
	// lacks recentKeyDigests (see docs/operations.md#upgrade).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1024
	RecentKeys []string `json:"recentKeys,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=crt,categories=rapport
// +kubebuilder:printcolumn:name="Experiment",type=string,JSONPath=`.spec.experiment`
// +kubebuilder:printcolumn:name="Run",type=integer,JSONPath=`.spec.run`
// +kubebuilder:printcolumn:name="Responses",type=integer,JSONPath=`.spec.total`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// ResponseTally is written by Rapport's feedback collector: the durable counts
// of accepted responses of one experiment, per segment, variant and score.
// Users do not create it; it is owned by its CXExperiment. The controller
// keeps the annotation cx.rapport.dev/experiment-fence on it: the version of
// the experiment the collector must have seen to count from its cache (see
// docs/measurement.md, "Allocation epochs").
type ResponseTally struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec holds the counts.
	// +required
	Spec ResponseTallySpec `json:"spec"`
}

// +kubebuilder:object:root=true

// ResponseTallyList is a list of ResponseTallies.
type ResponseTallyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ResponseTally `json:"items"`
}
