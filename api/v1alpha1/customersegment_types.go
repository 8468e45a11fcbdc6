package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MatchType says how a header, query parameter or cookie value is compared.
// +kubebuilder:validation:Enum=Exact;RegularExpression
type MatchType string

const (
	// MatchExact compares the value exactly (case-sensitive).
	MatchExact MatchType = "Exact"
	// MatchRegularExpression matches the value against an RE2 regular
	// expression. Gateway API marks regular expressions as implementation-specific
	// support: check that your gateway implements them.
	MatchRegularExpression MatchType = "RegularExpression"
)

// HeaderMatch recognises a customer by an HTTP request header.
type HeaderMatch struct {
	// type is how value is compared: Exact (default) or RegularExpression.
	// +optional
	// +kubebuilder:default=Exact
	Type MatchType `json:"type,omitempty"`

	// name is the HTTP header name, compared case-insensitively, e.g. x-customer-tier.
	// Use spec.match.cookies to match a cookie rather than a "Cookie" header.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$`
	Name string `json:"name"`

	// value is the header value to match.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Value string `json:"value"`
}

// QueryParamMatch recognises a customer by a URL query parameter.
type QueryParamMatch struct {
	// type is how value is compared: Exact (default) or RegularExpression.
	// +optional
	// +kubebuilder:default=Exact
	Type MatchType `json:"type,omitempty"`

	// name is the query parameter name, compared exactly, e.g. plan.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$`
	Name string `json:"name"`

	// value is the query parameter value to match.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Value string `json:"value"`
}

// CookieMatch recognises a customer by a cookie sent in the Cookie header.
// Rapport renders it as a regular-expression match on the Cookie header, so
// the gateway must support RegularExpression header matches.
type CookieMatch struct {
	// type is how value is compared: Exact (default) or RegularExpression.
	// +optional
	// +kubebuilder:default=Exact
	Type MatchType `json:"type,omitempty"`

	// name is the cookie name, e.g. tier.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$`
	Name string `json:"name"`

	// value is the cookie value to match. A RegularExpression value must not
	// contain ';' (it would cross into the next cookie).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Value string `json:"value"`
}

// SegmentMatch lists the conditions that recognise a segment's customers on
// each HTTP request. Every condition must hold (AND).
// +kubebuilder:validation:XValidation:rule="(has(self.headers) ? size(self.headers) : 0) + (has(self.queryParams) ? size(self.queryParams) : 0) + (has(self.cookies) ? size(self.cookies) : 0) >= 1",message="spec.match: give at least one condition in headers, queryParams or cookies"
// +kubebuilder:validation:XValidation:rule="!has(self.cookies) || size(self.cookies) == 0 || !has(self.headers) || !self.headers.exists(h, h.name.lowerAscii() == 'cookie')",message="spec.match.headers: a 'Cookie' header match cannot be combined with spec.match.cookies; move the condition to spec.match.cookies"
type SegmentMatch struct {
	// headers are HTTP request header conditions, at most 16, names unique.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Headers []HeaderMatch `json:"headers,omitempty"`

	// queryParams are URL query parameter conditions, at most 16, names unique.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	QueryParams []QueryParamMatch `json:"queryParams,omitempty"`

	// cookies are cookie conditions, at most 3 (they are combined into one
	// regular expression on the Cookie header, which grows with every cookie).
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=3
	Cookies []CookieMatch `json:"cookies,omitempty"`
}

// CustomerSegmentSpec defines a reusable group of customers.
type CustomerSegmentSpec struct {
	// description says who the customers are, for people reading reports.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Description string `json:"description,omitempty"`

	// match recognises the segment's customers on each HTTP request.
	// +required
	Match SegmentMatch `json:"match"`
}

// CustomerSegmentStatus is the observed state of a CustomerSegment.
type CustomerSegmentStatus struct {
	// observedGeneration is the generation last checked by the controller.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready says whether the segment can be rendered into routes
	// (for example, whether its regular expressions compile).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cseg,categories=rapport
// +kubebuilder:printcolumn:name="Description",type=string,JSONPath=`.spec.description`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// CustomerSegment is a reusable group of customers, recognised on each HTTP
// request by headers, query parameters or cookies. Experiments name segments
// in spec.segments to route and judge each group separately.
type CustomerSegment struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec defines the segment.
	// +required
	Spec CustomerSegmentSpec `json:"spec"`

	// status is the observed state.
	// +optional
	Status CustomerSegmentStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// CustomerSegmentList is a list of CustomerSegments.
type CustomerSegmentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CustomerSegment `json:"items"`
}
