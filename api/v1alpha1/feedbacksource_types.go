package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FeedbackProvider is the survey tool whose webhooks a FeedbackSource takes.
// +kubebuilder:validation:Enum=Typeform;SurveyMonkey;Survicate;Delighted;Generic
type FeedbackProvider string

const (
	// ProviderTypeform takes Typeform form_response webhooks, signed in the
	// Typeform-Signature header with the Secret's key "secret".
	ProviderTypeform FeedbackProvider = "Typeform"
	// ProviderSurveyMonkey takes SurveyMonkey response_completed webhooks,
	// signed in Sm-Signature with the Secret's keys "apiKey" and "apiSecret",
	// and reads the response's answers from the SurveyMonkey API with the
	// key "accessToken" (the webhook carries no answers).
	ProviderSurveyMonkey FeedbackProvider = "SurveyMonkey"
	// ProviderSurvicate takes Survicate webhooks, signed in the Hmac header
	// with the Secret's key "signingSecret".
	ProviderSurvicate FeedbackProvider = "Survicate"
	// ProviderDelighted takes Delighted survey_response webhooks, signed in
	// X-Delighted-Webhook-Signature with the Secret's key "apiKey".
	ProviderDelighted FeedbackProvider = "Delighted"
	// ProviderGeneric takes any JSON webhook, authenticated by a shared
	// token (Secret key "token") or an HMAC-SHA256 signature of the body
	// (Secret key "key"), for configurable exports such as Medallia's or
	// Qualtrics'.
	ProviderGeneric FeedbackProvider = "Generic"
)

// GenericAuth says how a Generic webhook proves where it comes from.
// +kubebuilder:validation:Enum=Token;HMACSHA256
type GenericAuth string

const (
	// GenericAuthToken compares a header's value, in constant time, with the
	// Secret's key "token" ("Bearer " before the token is allowed).
	GenericAuthToken GenericAuth = "Token"
	// GenericAuthHMACSHA256 checks a header holding the HMAC-SHA256 of the
	// raw body keyed with the Secret's key "key", in hex or base64, with or
	// without a "sha256=" prefix.
	GenericAuthHMACSHA256 GenericAuth = "HMACSHA256"
)

// GenericWebhook configures how a Generic source authenticates requests.
type GenericWebhook struct {
	// auth is Token (a shared token in a header) or HMACSHA256 (a signature
	// of the raw body in a header). Prefer HMACSHA256 when the sender can sign.
	// +required
	Auth GenericAuth `json:"auth"`

	// header carries the token or the signature. Default: Authorization for
	// Token, X-Rapport-Signature for HMACSHA256.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_|~]+$`
	Header string `json:"header,omitempty"`
}

// FeedbackMapping maps a provider's payload to one response, with CEL
// expressions (https://cel.dev). Each expression sees `body` (the JSON
// payload), `headers` (request headers, lower-case names, first value) and,
// for SurveyMonkey, `response` (the response's details read from its API).
// An unset field keeps the provider's default (docs/measurement.md lists
// them); set a field to override it.
type FeedbackMapping struct {
	// accept is a bool: false acknowledges the event without counting it
	// (partial responses, updates, other event types).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	Accept string `json:"accept,omitempty"`

	// eventID is a string identifying the event, the same across the
	// provider's retries: a repeated event is acknowledged and not counted
	// again.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	EventID string `json:"eventID,omitempty"`

	// assignment is a string: the signed assignment cookie's value, passed
	// to the survey tool in a hidden field or custom variable. It names the
	// experiment, run, variant and segment, and cannot be forged. When it is
	// empty, experiment, variant and segment are used instead.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	Assignment string `json:"assignment,omitempty"`

	// experiment is a string naming a CXExperiment of the namespace, used
	// when assignment is empty. Anyone who can set the field in the survey
	// tool can claim any variant: prefer assignment.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	Experiment string `json:"experiment,omitempty"`

	// variant is a string naming a variant of the experiment, used when
	// assignment is empty.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	Variant string `json:"variant,omitempty"`

	// segment is a string naming a segment of the experiment ("" or "all"
	// for an experiment without segments), used when assignment is empty.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	Segment string `json:"segment,omitempty"`

	// score is an int on the experiment's scale (CSAT 1..scaleMax, NPS
	// 0..10); convert the tool's scale here, e.g. `int(x) + 1`.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	Score string `json:"score,omitempty"`

	// respondent is a string identifying the customer (checked, never stored).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	Respondent string `json:"respondent,omitempty"`

	// at is when the customer answered: a timestamp, an RFC 3339 string or
	// Unix seconds.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	At string `json:"at,omitempty"`
}

// FeedbackSourceSpec declares an inbound webhook integration.
// +kubebuilder:validation:XValidation:rule="self.provider != 'Generic' || has(self.generic)",message="spec.generic is required with provider Generic: set generic.auth to Token or HMACSHA256"
// +kubebuilder:validation:XValidation:rule="self.provider == 'Generic' || !has(self.generic)",message="spec.generic applies to provider Generic only; remove it, the provider's own signature scheme is used"
type FeedbackSourceSpec struct {
	// provider is the survey tool: Typeform, SurveyMonkey, Survicate,
	// Delighted, or Generic for any JSON webhook.
	// +required
	Provider FeedbackProvider `json:"provider"`

	// secretRef names the Secret of the namespace holding the provider's
	// signing key or token, under the keys the provider needs: Typeform
	// "secret"; SurveyMonkey "apiKey", "apiSecret" and "accessToken";
	// Survicate "signingSecret"; Delighted "apiKey"; Generic "token" (auth
	// Token) or "key" (auth HMACSHA256).
	// +required
	SecretRef LocalObjectRef `json:"secretRef"`

	// generic configures a Generic source's authentication.
	// +optional
	Generic *GenericWebhook `json:"generic,omitempty"`

	// mapping overrides parts of the provider's default mapping from payload
	// to response.
	// +optional
	Mapping *FeedbackMapping `json:"mapping,omitempty"`
}

// FeedbackSourceError is the last rejected webhook of a source.
type FeedbackSourceError struct {
	// at is when the webhook was rejected.
	// +required
	At metav1.Time `json:"at"`

	// reason is the rejection's reason, as in the metric
	// rapport_feedback_rejections_total, e.g. InvalidSignature.
	// +required
	Reason string `json:"reason"`

	// code is the HTTP status answered, e.g. 401.
	// +required
	Code int32 `json:"code"`

	// message is the error answered to the provider, naming the field and the fix.
	// +required
	Message string `json:"message"`
}

// FeedbackSourceStatus is the observed state of a FeedbackSource.
type FeedbackSourceStatus struct {
	// observedGeneration is the generation last checked by the controller.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// webhookPath is the collector path the provider must post to.
	// +optional
	WebhookPath string `json:"webhookPath,omitempty"`

	// lastAcceptedAt is when a webhook was last counted (written by the
	// collector at most every few seconds).
	// +optional
	LastAcceptedAt *metav1.Time `json:"lastAcceptedAt,omitempty"`

	// lastError is the last rejected webhook.
	// +optional
	LastError *FeedbackSourceError `json:"lastError,omitempty"`

	// conditions: Ready says whether the mapping compiles and the Secret
	// holds the keys the provider needs.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cxfs,categories=rapport
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.provider`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Last Accepted",type=date,JSONPath=`.status.lastAcceptedAt`
// +kubebuilder:printcolumn:name="Last Error",type=string,JSONPath=`.status.lastError.reason`
// +kubebuilder:printcolumn:name="Path",type=string,JSONPath=`.status.webhookPath`,priority=10
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// FeedbackSource is an inbound integration with a survey tool: the tool
// posts webhooks to the collector at
// /v1/namespaces/{namespace}/sources/{name}/webhook, which verifies their
// signature, maps each payload to a response with CEL and counts it into
// the experiment's tally.
type FeedbackSource struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the integration.
	// +required
	Spec FeedbackSourceSpec `json:"spec"`

	// status is the observed state.
	// +optional
	Status FeedbackSourceStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// FeedbackSourceList is a list of FeedbackSources.
type FeedbackSourceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []FeedbackSource `json:"items"`
}
