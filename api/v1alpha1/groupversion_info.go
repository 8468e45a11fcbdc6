// Package v1alpha1 contains the cx.rapport.dev/v1alpha1 API: CXExperiment,
// CustomerSegment, SatisfactionMetric, ResponseTally and FeedbackSource.
//
// +kubebuilder:object:generate=true
// +groupName=cx.rapport.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "cx.rapport.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this API with a runtime.Scheme.
	// It depends on apimachinery only, so the API package stays light to import.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this API to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&CXExperiment{}, &CXExperimentList{},
		&CustomerSegment{}, &CustomerSegmentList{},
		&SatisfactionMetric{}, &SatisfactionMetricList{},
		&ResponseTally{}, &ResponseTallyList{},
		&FeedbackSource{}, &FeedbackSourceList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
