package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SecretKeyRef selects a key of a Secret in the object's own namespace.
type SecretKeyRef struct {
	// name is the Secret's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// key is the key in the Secret's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// PrometheusQuery is a PromQL query run against a Prometheus-compatible API.
//
// The query is a Go template. Rapport fills in:
// {{ .Variant }}, {{ .Segment }} ("all" when the experiment has no segments),
// {{ .Namespace }}, {{ .Experiment }} and {{ .Window }}: the length of the
// span being read, as a PromQL duration such as 3725s or 90250ms. Rapport
// reads each allocation epoch of a segment separately: the query is
// evaluated at the epoch's end (now for the current one) with {{ .Window }}
// the epoch's length, so it must count the responses of the last
// {{ .Window }}, e.g. with increase(...[{{ .Window }}]).
type PrometheusQuery struct {
	// address is the base URL of the Prometheus HTTP API, e.g. http://prometheus.monitoring:9090.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s]+$`
	Address string `json:"address"`

	// query is the PromQL template. For a SatisfactionMetric it must return one
	// sample per score, labelled `score`, whose value is the number of responses
	// with that score. For a guardrail it must return a single sample.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=8192
	Query string `json:"query"`

	// bearerTokenSecretRef names a Secret key holding a bearer token sent to Prometheus.
	// +optional
	BearerTokenSecretRef *SecretKeyRef `json:"bearerTokenSecretRef,omitempty"`

	// timeout bounds each query (default 10s, at most 2m).
	// +optional
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('2m')",message="timeout must be more than 0s and at most 2m, e.g. 10s"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// SatisfactionMetricSpec defines how to read satisfaction responses from Prometheus.
type SatisfactionMetricSpec struct {
	// description says where the responses come from, for people reading reports.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Description string `json:"description,omitempty"`

	// prometheus is the query that returns the count of responses per score
	// for one variant and segment.
	// +required
	Prometheus PrometheusQuery `json:"prometheus"`
}

// SatisfactionMetricStatus is the observed state of a SatisfactionMetric.
type SatisfactionMetricStatus struct {
	// observedGeneration is the generation last checked by the controller.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready says whether the query template parses and its token
	// Secret exists.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=csm,categories=rapport
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.prometheus.address`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// SatisfactionMetric is a reusable way to read satisfaction responses from
// Prometheus, for experiments whose apps already export survey answers.
type SatisfactionMetric struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec defines the query.
	// +required
	Spec SatisfactionMetricSpec `json:"spec"`

	// status is the observed state.
	// +optional
	Status SatisfactionMetricStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// SatisfactionMetricList is a list of SatisfactionMetrics.
type SatisfactionMetricList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SatisfactionMetric `json:"items"`
}
