package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AllSegment is the segment name Rapport uses, in status, metrics and the
// collector, for an experiment without segments (all traffic of the route).
// It is therefore reserved in spec.segments.
const AllSegment = "all"

// ServiceRef names a Service of the experiment's namespace and its port.
type ServiceRef struct {
	// name is the Service's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// port is the Service port that receives the traffic.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`
}

// Variant is one version of the experience under test.
type Variant struct {
	// name identifies the variant in status, metrics and feedback, e.g. one-page.
	// A DNS label: lower-case letters, digits and '-', at most 63 characters.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// control marks the variant customers see today. Exactly one variant is the control.
	// +optional
	Control bool `json:"control,omitempty"`

	// service is the Service serving this variant. Required with spec.traffic.gatewayAPI.
	// +optional
	Service *ServiceRef `json:"service,omitempty"`

	// deployment is the Deployment running this variant. Required with
	// spec.traffic.replicas, where Rapport scales it.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Deployment string `json:"deployment,omitempty"`
}

// CookieStickiness keeps a customer on the variant they first saw with a cookie.
type CookieStickiness struct {
	// name of the session cookie the gateway sets, e.g. cx-variant.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_|~]+$`
	Name string `json:"name"`

	// lifetime of the cookie, e.g. 24h. Unset: a session cookie.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	Lifetime *metav1.Duration `json:"lifetime,omitempty"`
}

// Stickiness keeps customers on one variant across requests.
type Stickiness struct {
	// cookie-based session persistence (Gateway API HTTPRoute sessionPersistence,
	// which needs the Gateway API experimental channel CRDs and a gateway that
	// implements it).
	// +required
	Cookie *CookieStickiness `json:"cookie"`
}

// GatewayAPITraffic shifts traffic with Gateway API HTTPRoute weights.
type GatewayAPITraffic struct {
	// httpRoute is an existing HTTPRoute of the experiment's namespace whose
	// rule(s) send traffic to the control variant's Service. Rapport never edits
	// its filters, other rules, hostnames or parentRefs.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	HTTPRoute string `json:"httpRoute"`

	// stickiness keeps a customer on the variant they saw. It makes the realised
	// share of each variant drift from the step weight: status reports the
	// realised share.
	// +optional
	Stickiness *Stickiness `json:"stickiness,omitempty"`

	// tagRequests adds the request headers x-rapport-variant and
	// x-rapport-segment to traffic Rapport routes, so an app can learn which
	// variant and segment served a customer (useful to report feedback).
	// +optional
	TagRequests bool `json:"tagRequests,omitempty"`

	// assignmentCookie makes the gateway set, on every response of a variant
	// Rapport routes, a cookie recording experiment, run, variant, segment and
	// allocation epoch, signed by Rapport, so that a customer's answer in the
	// browser (the survey intercept) or in a survey tool is attributed to the
	// variant that served them without changing the app. It is a
	// ResponseHeaderModifier on each backendRef, a Gateway API Extended
	// feature: see docs/measurement.md for gateways that lack it.
	// +optional
	AssignmentCookie *AssignmentCookie `json:"assignmentCookie,omitempty"`
}

// AssignmentCookie configures the signed assignment cookie the gateway sets.
type AssignmentCookie struct {
	// name of the cookie. Default: rapport-<experiment name>.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_|~]+$`
	Name string `json:"name,omitempty"`

	// maxAge is how long the browser keeps the cookie, e.g. 24h (1m..8760h,
	// default 24h). An answer is accepted only during the run the cookie names.
	// +optional
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('8760h')",message="spec.traffic.gatewayAPI.assignmentCookie.maxAge must be between 1m and 8760h, e.g. 24h"
	MaxAge *metav1.Duration `json:"maxAge,omitempty"`

	// secure adds the Secure attribute (default true), so the browser keeps
	// and sends the cookie over HTTPS only. Set false only for a site served
	// over plain HTTP, such as a local test.
	// +optional
	// +kubebuilder:default=true
	Secure *bool `json:"secure,omitempty"`
}

// ReplicasTraffic splits traffic by the number of pods of each variant, for
// clusters without a gateway. The Service clients use must select the pods of
// every variant.
type ReplicasTraffic struct {
	// total is the number of pods shared by all variants (at least one pod per variant).
	// +required
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=1000
	Total int32 `json:"total"`
}

// Traffic says how Rapport moves customers between variants. Exactly one of
// gatewayAPI and replicas.
// +kubebuilder:validation:XValidation:rule="has(self.gatewayAPI) != has(self.replicas)",message="spec.traffic: set exactly one of gatewayAPI or replicas"
type Traffic struct {
	// gatewayAPI shifts traffic with HTTPRoute weights (recommended; needed for segments).
	// +optional
	GatewayAPI *GatewayAPITraffic `json:"gatewayAPI,omitempty"`

	// replicas shifts traffic by scaling the variants' Deployments. No segments.
	// +optional
	Replicas *ReplicasTraffic `json:"replicas,omitempty"`
}

// Step is one stage of the rollout.
// +kubebuilder:validation:XValidation:rule="!has(self.maxDuration) || duration(self.minDuration) <= duration(self.maxDuration)",message="spec.steps[]: minDuration must not exceed maxDuration; raise maxDuration or lower minDuration"
type Step struct {
	// weight is the percentage of each segment's traffic sent to EACH
	// non-control variant during this step; the control keeps the rest.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Weight int32 `json:"weight"`

	// minDuration is the least time the step holds before it may advance, e.g. 10m.
	// +optional
	// +kubebuilder:default="0s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	MinDuration metav1.Duration `json:"minDuration"`

	// maxDuration is the most time the step may last undecided; then
	// spec.onInconclusive applies. Unset: no limit.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	MaxDuration *metav1.Duration `json:"maxDuration,omitempty"`
}

// Promotion says what happens after the last step.
// +kubebuilder:validation:Enum=Automatic;Manual
type Promotion string

const (
	// PromotionAutomatic routes each segment to its best non-inferior variant.
	PromotionAutomatic Promotion = "Automatic"
	// PromotionManual waits at the last step for a promote action.
	PromotionManual Promotion = "Manual"
)

// InconclusivePolicy says what happens when a step's maxDuration passes undecided.
// +kubebuilder:validation:Enum=Rollback;Hold;Continue
type InconclusivePolicy string

const (
	// InconclusiveRollback rolls the undecided variants back.
	InconclusiveRollback InconclusivePolicy = "Rollback"
	// InconclusiveHold stays at the step until the evidence decides.
	InconclusiveHold InconclusivePolicy = "Hold"
	// InconclusiveContinue advances to the next step anyway (never promotes an
	// undecided variant: at the end it waits or holds).
	InconclusiveContinue InconclusivePolicy = "Continue"
)

// SatisfactionMetricKind is the satisfaction score judged.
// +kubebuilder:validation:Enum=CSAT;NPS
type SatisfactionMetricKind string

const (
	// MetricCSAT is the percentage of satisfied responses (score >= satisfiedAtOrAbove).
	MetricCSAT SatisfactionMetricKind = "CSAT"
	// MetricNPS is % promoters (9-10) minus % detractors (0-6) on a 0..10 scale.
	MetricNPS SatisfactionMetricKind = "NPS"
)

// CollectorSource reads responses posted to Rapport's built-in feedback collector.
type CollectorSource struct {
	// browser lets customers' browsers post answers for this experiment to
	// the collector's public endpoint, with the signed assignment cookie
	// instead of a token: the survey intercept GET /v1/survey.js does so.
	// Unset: only the token-authenticated API and FeedbackSources take answers.
	// +optional
	Browser *BrowserFeedback `json:"browser,omitempty"`
}

// BrowserFeedback says which web pages may post customers' answers.
// +kubebuilder:validation:XValidation:rule="(has(self.allowedOrigins) && size(self.allowedOrigins) > 0) || has(self.allowedOriginsSecretRef)",message="spec.satisfaction.source.collector.browser: list the origins of your pages in allowedOrigins (e.g. https://shop.example.com) or name a Secret in allowedOriginsSecretRef"
type BrowserFeedback struct {
	// allowedOrigins are the origins (scheme://host[:port], no path) of the
	// pages that may post answers, e.g. https://shop.example.com. A browser
	// on any other origin is refused (CORS), and so is a request without an
	// Origin header.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^https?://[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?$`
	AllowedOrigins []string `json:"allowedOrigins,omitempty"`

	// allowedOriginsSecretRef names a Secret key of the namespace that lists
	// more allowed origins, one per line or comma-separated, for lists kept
	// outside the experiment (for example by a platform team). It is re-read
	// at most every 30 seconds.
	// +optional
	AllowedOriginsSecretRef *SecretKeyRef `json:"allowedOriginsSecretRef,omitempty"`
}

// LocalObjectRef names an object of the same namespace.
type LocalObjectRef struct {
	// name of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// SatisfactionSource says where responses come from. Exactly one of collector and metricRef.
// +kubebuilder:validation:XValidation:rule="has(self.collector) != has(self.metricRef)",message="spec.satisfaction.source: set exactly one of collector: {} or metricRef: {name: ...}"
type SatisfactionSource struct {
	// collector reads responses posted to Rapport's feedback collector.
	// +optional
	Collector *CollectorSource `json:"collector,omitempty"`

	// metricRef names a SatisfactionMetric of the namespace, read from Prometheus.
	// +optional
	MetricRef *LocalObjectRef `json:"metricRef,omitempty"`
}

// Satisfaction defines the satisfaction thresholds every variant must hold.
//
// Points and percentages are decimal strings such as "2.5" (never floats).
// +kubebuilder:validation:XValidation:rule="self.metric != 'NPS' || !has(self.scaleMax) || self.scaleMax == 10",message="spec.satisfaction.scaleMax: NPS is always scored 0..10; remove scaleMax or set it to 10"
// +kubebuilder:validation:XValidation:rule="self.metric != 'NPS' || !has(self.satisfiedAtOrAbove)",message="spec.satisfaction.satisfiedAtOrAbove applies to CSAT only; remove it for NPS (promoters are 9-10, detractors 0-6)"
// +kubebuilder:validation:XValidation:rule="!has(self.satisfiedAtOrAbove) || self.satisfiedAtOrAbove <= (has(self.scaleMax) ? self.scaleMax : 5)",message="spec.satisfaction.satisfiedAtOrAbove must be within the scale 1..scaleMax (scaleMax defaults to 5)"
// +kubebuilder:validation:XValidation:rule="!has(self.minimum) || (self.metric == 'NPS' ? (double(self.minimum) >= -100.0 && double(self.minimum) <= 100.0) : (double(self.minimum) >= 0.0 && double(self.minimum) <= 100.0))",message="spec.satisfaction.minimum is out of range: CSAT points are 0..100, NPS points are -100..100"
// +kubebuilder:validation:XValidation:rule="double(self.maxDrop) <= 50.0",message="spec.satisfaction.maxDrop must be between 0 and 50 points, e.g. \"3\""
// +kubebuilder:validation:XValidation:rule="double(self.confidence) >= 80.0 && double(self.confidence) <= 99.9",message="spec.satisfaction.confidence must be between 80 and 99.9 percent, e.g. \"95\""
type Satisfaction struct {
	// metric is the score judged: CSAT (% of responses >= satisfiedAtOrAbove on
	// 1..scaleMax) or NPS (% promoters 9-10 minus % detractors 0-6 on 0..10).
	// +optional
	// +kubebuilder:default=CSAT
	Metric SatisfactionMetricKind `json:"metric,omitempty"`

	// scaleMax is the top of the CSAT scale 1..scaleMax (2..10, default 5). NPS is always 0..10.
	// +optional
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=10
	ScaleMax *int32 `json:"scaleMax,omitempty"`

	// satisfiedAtOrAbove is the lowest CSAT score counted as satisfied
	// (default scaleMax-1, the usual top-2-box: 4 and 5 on a 1..5 scale).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	SatisfiedAtOrAbove *int32 `json:"satisfiedAtOrAbove,omitempty"`

	// minimum is an optional absolute floor for every variant, in the metric's
	// points (CSAT 0..100, NPS -100..100), e.g. "80".
	// +optional
	// +kubebuilder:validation:MaxLength=8
	// +kubebuilder:validation:Pattern=`^-?[0-9]{1,3}(\.[0-9]{1,2})?$`
	Minimum *string `json:"minimum,omitempty"`

	// maxDrop is the largest tolerated drop of a variant against the control,
	// in points (0..50), e.g. "3": a variant is rolled back once it is
	// confidently more than maxDrop points below the control, over the run or
	// over its recent responses. Fixed for a run: an edit applies to the next run.
	// +optional
	// +kubebuilder:default="3"
	// +kubebuilder:validation:MaxLength=6
	// +kubebuilder:validation:Pattern=`^[0-9]{1,2}(\.[0-9]{1,2})?$`
	MaxDrop string `json:"maxDrop,omitempty"`

	// confidence sets the error budgets, in percent (80..99.9), e.g. "95":
	// with alpha = 100 - confidence, the chance that any variant beyond
	// maxDrop (or below minimum) is ever advanced or promoted, in any segment
	// of the experiment, is at most alpha (family-wise); and in each segment,
	// the chance that a variant within maxDrop is ever rolled back is at most
	// alpha (per segment). Fixed for a run: an edit applies to the next run.
	// +optional
	// +kubebuilder:default="95"
	// +kubebuilder:validation:MaxLength=5
	// +kubebuilder:validation:Pattern=`^[0-9]{2}(\.[0-9])?$`
	Confidence string `json:"confidence,omitempty"`

	// minResponses is the number of responses needed per variant and segment
	// (control included) before any verdict.
	// +optional
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=1000000
	MinResponses int32 `json:"minResponses,omitempty"`

	// source says where responses come from.
	// +required
	Source SatisfactionSource `json:"source"`

	// interval is how often a polled source (metricRef) is read, e.g. 30s (1s..1h).
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('1h')",message="spec.satisfaction.interval must be between 1s and 1h, e.g. 30s"
	Interval metav1.Duration `json:"interval,omitempty"`
}

// Guardrail is a technical check every variant must pass; a breach rolls the variant back.
// +kubebuilder:validation:XValidation:rule="has(self.max) || has(self.min)",message="spec.guardrails[]: set max and/or min, e.g. max: \"0.01\""
type Guardrail struct {
	// name identifies the guardrail in status and events, e.g. error-rate.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// prometheus is the query; it may use {{ .Variant }} and {{ .Segment }} and
	// must return a single sample.
	// +required
	Prometheus PrometheusQuery `json:"prometheus"`

	// max: the variant breaches when the value is above it, e.g. "0.01".
	// +optional
	// +kubebuilder:validation:MaxLength=24
	// +kubebuilder:validation:Pattern=`^-?[0-9]{1,12}(\.[0-9]{1,9})?$`
	Max *string `json:"max,omitempty"`

	// min: the variant breaches when the value is below it.
	// +optional
	// +kubebuilder:validation:MaxLength=24
	// +kubebuilder:validation:Pattern=`^-?[0-9]{1,12}(\.[0-9]{1,9})?$`
	Min *string `json:"min,omitempty"`
}

// CXExperimentSpec is what a product team declares.
// +kubebuilder:validation:XValidation:rule="self.steps.all(s, s.weight * (size(self.variants) - 1) <= 100)",message="spec.steps[].weight is the share of EACH non-control variant, so weight × (number of variants - 1) must be at most 100; lower the weights or remove a variant"
// +kubebuilder:validation:XValidation:rule="!has(self.traffic.replicas) || !has(self.segments) || size(self.segments) == 0",message="spec.segments: replica-ratio traffic cannot tell customers apart; remove spec.segments or use spec.traffic.gatewayAPI"
// +kubebuilder:validation:XValidation:rule="!has(self.traffic.gatewayAPI) || self.variants.all(v, has(v.service))",message="spec.variants[].service is required with spec.traffic.gatewayAPI: name each variant's Service and port"
// +kubebuilder:validation:XValidation:rule="!has(self.traffic.replicas) || self.variants.all(v, has(v.deployment))",message="spec.variants[].deployment is required with spec.traffic.replicas: name each variant's Deployment"
// +kubebuilder:validation:XValidation:rule="!has(self.traffic.replicas) || self.traffic.replicas.total >= size(self.variants)",message="spec.traffic.replicas.total must be at least the number of variants (one pod each)"
// +kubebuilder:validation:XValidation:rule="self.variants == oldSelf.variants",message="spec.variants is immutable; create a new experiment to test other variants"
// +kubebuilder:validation:XValidation:rule="(has(self.segments) ? self.segments : []) == (has(oldSelf.segments) ? oldSelf.segments : [])",message="spec.segments is immutable; create a new experiment for other segments"
// +kubebuilder:validation:XValidation:rule="self.traffic == oldSelf.traffic",message="spec.traffic is immutable; create a new experiment to change how traffic is routed"
type CXExperimentSpec struct {
	// hypothesis states what the team expects, e.g. "One-page checkout keeps
	// customers as satisfied with fewer steps". Shown in reports.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Hypothesis string `json:"hypothesis,omitempty"`

	// touchpoint is the journey moment the experiment changes, e.g. checkout.
	// Used as a label on metrics and in reports.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Touchpoint string `json:"touchpoint,omitempty"`

	// variants are 2..8 versions of the experience, unique names, exactly one control.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=2
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:XValidation:rule="self.exists(v, has(v.control) && v.control)",message="spec.variants: no variant has control: true; mark the variant customers see today as the control"
	// +kubebuilder:validation:XValidation:rule="self.filter(v, has(v.control) && v.control).size() <= 1",message="spec.variants: more than one variant has control: true; keep exactly one control"
	// +kubebuilder:validation:XValidation:rule="self.all(a, self.exists_one(b, b.name == a.name))",message="spec.variants: variant names must be unique; rename the duplicate"
	// +kubebuilder:validation:XValidation:rule="self.all(a, !has(a.service) || self.exists_one(b, has(b.service) && b.service.name == a.service.name))",message="spec.variants: each variant needs its own Service; two variants name the same service"
	Variants []Variant `json:"variants"`

	// segments are CustomerSegment names of the namespace; each is routed and
	// judged separately. Empty: all traffic of the route, reported as segment "all".
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +kubebuilder:validation:XValidation:rule="!self.exists(s, s == 'all')",message="spec.segments: 'all' is reserved for experiments without segments; rename that CustomerSegment"
	Segments []string `json:"segments,omitempty"`

	// traffic says how customers are moved between variants: exactly one of gatewayAPI or replicas.
	// +required
	Traffic Traffic `json:"traffic"`

	// steps are 1..20 rollout stages with non-decreasing weights.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:XValidation:rule="self.map(s, s.weight).isSorted()",message="spec.steps: weights must not decrease from one step to the next; reorder the steps"
	Steps []Step `json:"steps"`

	// promotion: Automatic routes each segment to its best non-inferior variant
	// after the last step; Manual waits there for a promote action.
	// +optional
	// +kubebuilder:default=Automatic
	Promotion Promotion `json:"promotion,omitempty"`

	// onInconclusive applies when a step's maxDuration passes undecided:
	// Rollback (default), Hold, or Continue.
	// +optional
	// +kubebuilder:default=Rollback
	OnInconclusive InconclusivePolicy `json:"onInconclusive,omitempty"`

	// satisfaction defines the thresholds every variant must hold.
	// +required
	Satisfaction Satisfaction `json:"satisfaction"`

	// guardrails are optional technical checks (at most 8); a breach rolls the variant back.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	Guardrails []Guardrail `json:"guardrails,omitempty"`

	// paused holds the experiment at its current step with its current weights.
	// Rollbacks on inferior evidence still happen while paused.
	// +optional
	Paused bool `json:"paused,omitempty"`
}

// ExperimentPhase is the lifecycle phase of an experiment.
// +kubebuilder:validation:Enum=Pending;Progressing;Paused;Succeeded;RolledBack;Failed
type ExperimentPhase string

const (
	// PhasePending means accepted, traffic not yet shifted.
	PhasePending ExperimentPhase = "Pending"
	// PhaseProgressing means a step is running.
	PhaseProgressing ExperimentPhase = "Progressing"
	// PhasePaused means held at the current step by spec.paused.
	PhasePaused ExperimentPhase = "Paused"
	// PhaseSucceeded means promoted; each segment routes to its chosen variant.
	PhaseSucceeded ExperimentPhase = "Succeeded"
	// PhaseRolledBack means no variant is active in any segment; traffic is on the control.
	PhaseRolledBack ExperimentPhase = "RolledBack"
	// PhaseFailed means the experiment cannot run (invalid references, conflicts); traffic is on the control.
	PhaseFailed ExperimentPhase = "Failed"
)

// Terminal reports whether the phase ends a run (until a retry).
func (p ExperimentPhase) Terminal() bool {
	return p == PhaseSucceeded || p == PhaseRolledBack || p == PhaseFailed
}

// WaitingReason says why a running experiment stays at its current step.
// The values are also the reasons of its Ready and Reconciling conditions.
// +kubebuilder:validation:Enum=StepRunning;Paused;AwaitingPromotion;HoldingInconclusive
type WaitingReason string

const (
	// WaitingStepRunning means the step collects evidence or holds for its minDuration.
	WaitingStepRunning WaitingReason = "StepRunning"
	// WaitingPaused means spec.paused holds the experiment at its step.
	WaitingPaused WaitingReason = "Paused"
	// WaitingPromotion means every step passed with promotion: Manual; a
	// promote action is awaited.
	WaitingPromotion WaitingReason = "AwaitingPromotion"
	// WaitingInconclusive means the step's maxDuration passed undecided and
	// spec.onInconclusive holds it there (Hold, or Continue at the last step)
	// until the evidence decides.
	WaitingInconclusive WaitingReason = "HoldingInconclusive"
)

// Verdict is the decision engine's judgement of a variant in a segment.
// +kubebuilder:validation:Enum=InsufficientData;Inconclusive;NonInferior;Inferior
type Verdict string

const (
	// VerdictInsufficientData means fewer than minResponses responses, or no data.
	VerdictInsufficientData Verdict = "InsufficientData"
	// VerdictInconclusive means keep collecting.
	VerdictInconclusive Verdict = "Inconclusive"
	// VerdictNonInferior means confidently no more than maxDrop below the control (safe to advance).
	VerdictNonInferior Verdict = "NonInferior"
	// VerdictInferior means confidently more than maxDrop below the control, or below minimum (roll back).
	VerdictInferior Verdict = "Inferior"
)

// VariantState is where a variant stands in one segment.
// +kubebuilder:validation:Enum=Control;Active;RolledBack;Promoted;Retired
type VariantState string

const (
	// StateControl means the control variant.
	StateControl VariantState = "Control"
	// StateActive means receiving the step weight.
	StateActive VariantState = "Active"
	// StateRolledBack means taken out of the segment; its traffic went back to the control.
	StateRolledBack VariantState = "RolledBack"
	// StatePromoted means receives all of the segment's traffic after promotion.
	StatePromoted VariantState = "Promoted"
	// StateRetired means non-inferior, but another variant was promoted in the segment.
	StateRetired VariantState = "Retired"
)

// VariantStatus is a variant's measurement and traffic in one segment.
type VariantStatus struct {
	// name of the variant.
	// +required
	Name string `json:"name"`

	// state of the variant in this segment.
	// +required
	State VariantState `json:"state"`

	// weight is the percentage of the segment's traffic routed to the variant now.
	// +required
	Weight int32 `json:"weight"`

	// responses counted for this variant in this segment during the current run.
	// +optional
	Responses int64 `json:"responses,omitempty"`

	// realizedShare is the variant's percentage of the segment's responses,
	// which drifts from weight with sticky sessions or uneven response rates.
	// +optional
	RealizedShare string `json:"realizedShare,omitempty"`

	// score is the satisfaction estimate in points, e.g. "86.2".
	// +optional
	Score string `json:"score,omitempty"`

	// scoreInterval is the always-valid confidence interval of score, e.g. "[83.1, 89.0]".
	// +optional
	ScoreInterval string `json:"scoreInterval,omitempty"`

	// difference is score minus the control's score, in points. Empty for the control.
	// +optional
	Difference string `json:"difference,omitempty"`

	// differenceInterval is the always-valid confidence interval of difference.
	// +optional
	DifferenceInterval string `json:"differenceInterval,omitempty"`

	// verdict of the decision engine. Empty for the control.
	// +optional
	Verdict Verdict `json:"verdict,omitempty"`

	// message explains the verdict in one line, with the numbers.
	// +optional
	Message string `json:"message,omitempty"`

	// windows are the variant's open recent-evidence windows (at most 3),
	// kept by Rapport so that a restart continues the same test.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=3
	Windows []RecentWindow `json:"windows,omitempty"`
}

// SegmentStatus is the state of one segment of the experiment.
type SegmentStatus struct {
	// name of the CustomerSegment, or "all" for an experiment without segments.
	// +required
	Name string `json:"name"`

	// promoted is the variant that received the segment's traffic at promotion.
	// +optional
	Promoted string `json:"promoted,omitempty"`

	// variants lists each variant's traffic and measurement, the control first.
	// +optional
	// +listType=map
	// +listMapKey=name
	Variants []VariantStatus `json:"variants,omitempty"`

	// epoch is the segment's current allocation epoch (see epochs); 0 for a
	// run that started before Rapport recorded epochs.
	// +optional
	Epoch int32 `json:"epoch,omitempty"`

	// epochs are the segment's allocation epochs of the run, oldest first:
	// a new one starts whenever the segment's weights change (a step, a
	// rollback, a promotion).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Epochs []EpochStatus `json:"epochs,omitempty"`

	// sampleRatio is the sample-ratio-mismatch test of the segment.
	// +optional
	SampleRatio *SampleRatioStatus `json:"sampleRatio,omitempty"`
}

// RollbackReason says why a variant was rolled back.
// +kubebuilder:validation:Enum=Inferior;RecentlyInferior;BelowMinimum;GuardrailBreached;Inconclusive;Aborted
type RollbackReason string

const (
	// RollbackInferior means confidently more than maxDrop below the control.
	RollbackInferior RollbackReason = "Inferior"
	// RollbackRecentlyInferior means confidently more than maxDrop below the
	// control over its recent responses: a regression that began mid-run.
	RollbackRecentlyInferior RollbackReason = "RecentlyInferior"
	// RollbackBelowMinimum means confidently below spec.satisfaction.minimum.
	RollbackBelowMinimum RollbackReason = "BelowMinimum"
	// RollbackGuardrail means a guardrail breached.
	RollbackGuardrail RollbackReason = "GuardrailBreached"
	// RollbackInconclusive means maxDuration passed undecided with onInconclusive: Rollback.
	RollbackInconclusive RollbackReason = "Inconclusive"
	// RollbackAborted means an abort action.
	RollbackAborted RollbackReason = "Aborted"
)

// Rollback records one variant taken out of one segment.
type Rollback struct {
	// variant rolled back.
	// +required
	Variant string `json:"variant"`

	// segment it was rolled back in.
	// +required
	Segment string `json:"segment"`

	// reason for the rollback.
	// +required
	Reason RollbackReason `json:"reason"`

	// at is when the rollback was decided.
	// +required
	At metav1.Time `json:"at"`

	// step (1-based) during which it happened.
	// +optional
	Step int32 `json:"step,omitempty"`

	// responses of the variant in the segment when it was decided.
	// +optional
	Responses int64 `json:"responses,omitempty"`

	// evidence says what decided it, with the numbers.
	// +optional
	Evidence string `json:"evidence,omitempty"`

	// decisiveResponseAt is when the collector committed the newest response
	// counted when the rollback was decided (collector source only).
	// +optional
	DecisiveResponseAt *metav1.MicroTime `json:"decisiveResponseAt,omitempty"`

	// trafficRestoredAt is when the route (or Deployments) stopped sending
	// the segment's customers to the variant. trafficRestoredAt minus
	// decisiveResponseAt is the rollback latency.
	// +optional
	TrafficRestoredAt *metav1.MicroTime `json:"trafficRestoredAt,omitempty"`
}

// OriginalRule records a rule of the user's HTTPRoute as it was before
// Rapport changed its backends (experiments without segments), so it can be
// restored exactly.
type OriginalRule struct {
	// index of the rule in spec.rules when it was recorded.
	// +required
	Index int32 `json:"index"`

	// name of the rule, when it has one.
	// +optional
	Name string `json:"name,omitempty"`

	// backendRefs is the rule's original backendRefs, as JSON.
	// +required
	BackendRefs string `json:"backendRefs"`

	// sessionPersistence is the rule's original sessionPersistence, as JSON
	// ("" when it had none).
	// +optional
	SessionPersistence string `json:"sessionPersistence,omitempty"`
}

// OriginalReplicas records a Deployment's replicas before Rapport scaled it.
type OriginalReplicas struct {
	// deployment name.
	// +required
	Deployment string `json:"deployment"`

	// replicas before the experiment.
	// +required
	Replicas int32 `json:"replicas"`
}

// TrafficStatus records what Rapport changed so that it can be restored.
type TrafficStatus struct {
	// childRoute is the HTTPRoute Rapport owns for segment routing.
	// +optional
	ChildRoute string `json:"childRoute,omitempty"`

	// originalRules are the user's route rules Rapport changed (no segments).
	// +optional
	// +listType=atomic
	OriginalRules []OriginalRule `json:"originalRules,omitempty"`

	// originalReplicas are the Deployments' replicas before the experiment (replica mode).
	// +optional
	// +listType=atomic
	OriginalReplicas []OriginalReplicas `json:"originalReplicas,omitempty"`

	// appliedAt is when Rapport last changed the traffic split.
	// +optional
	AppliedAt *metav1.Time `json:"appliedAt,omitempty"`
}

// HandledActions records the tokens of the manual actions already carried
// out, so that each annotation is acted on once (see docs/concepts.md).
type HandledActions struct {
	// promote is the last handled value of the cx.rapport.dev/promote annotation.
	// +optional
	Promote string `json:"promote,omitempty"`
	// abort is the last handled value of the cx.rapport.dev/abort annotation.
	// +optional
	Abort string `json:"abort,omitempty"`
	// retry is the last handled value of the cx.rapport.dev/retry annotation.
	// +optional
	Retry string `json:"retry,omitempty"`
}

// Summary holds short strings for kubectl get columns.
type Summary struct {
	// control is the control's score across segments of the latest measurement, e.g. "86.0".
	// +optional
	Control string `json:"control,omitempty"`
	// variants summarises the other variants, e.g. "one-page 74.1 (-11.9)".
	// +optional
	Variants string `json:"variants,omitempty"`
}

// CXExperimentStatus is the observed state of an experiment. All rollout
// progress lives here, so a controller restart resumes where it was.
type CXExperimentStatus struct {
	// observedGeneration is the generation last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// phase of the experiment.
	// +optional
	Phase ExperimentPhase `json:"phase,omitempty"`

	// run counts the runs of the experiment: 1, then +1 at each retry.
	// Responses are counted per run.
	// +optional
	Run int32 `json:"run,omitempty"`

	// currentStep is the 1-based index of the step running (0 before the first).
	// +optional
	CurrentStep int32 `json:"currentStep,omitempty"`

	// stepWeight is the weight of the current step.
	// +optional
	StepWeight int32 `json:"stepWeight,omitempty"`

	// waiting says why a running experiment stays at its current step:
	// StepRunning, Paused, AwaitingPromotion or HoldingInconclusive. Empty
	// before the run starts and once it has ended.
	// +optional
	Waiting WaitingReason `json:"waiting,omitempty"`

	// stepStartedAt is when the current step began.
	// +optional
	StepStartedAt *metav1.Time `json:"stepStartedAt,omitempty"`

	// pausedAt is when spec.paused took effect; the time paused does not
	// count towards the step's durations.
	// +optional
	PausedAt *metav1.Time `json:"pausedAt,omitempty"`

	// startedAt is when the current run began.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`

	// completedAt is when the run ended (Succeeded, RolledBack or Failed).
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`

	// measuredAt is when satisfaction was last measured.
	// +optional
	MeasuredAt *metav1.Time `json:"measuredAt,omitempty"`

	// settings are the satisfaction settings the current run is judged by:
	// spec.satisfaction as it was when the run started. An edit of
	// spec.satisfaction during a run applies to the next run.
	// +optional
	Settings *RunSettings `json:"settings,omitempty"`

	// segments holds weights, measurements and verdicts per segment and variant.
	// +optional
	// +listType=map
	// +listMapKey=name
	Segments []SegmentStatus `json:"segments,omitempty"`

	// rollbacks records each variant rolled back in each segment during the current run.
	// +optional
	// +listType=atomic
	Rollbacks []Rollback `json:"rollbacks,omitempty"`

	// traffic records what Rapport changed, to restore it.
	// +optional
	Traffic TrafficStatus `json:"traffic,omitempty"`

	// handledActions records the manual actions carried out.
	// +optional
	HandledActions HandledActions `json:"handledActions,omitempty"`

	// summary holds short strings for kubectl get.
	// +optional
	Summary Summary `json:"summary,omitempty"`

	// conditions: Ready, Reconciling and Stalled (kstatus), Degraded, and
	// the domain conditions ReferencesResolved, TrafficRouted and Measured.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cxe,categories=rapport
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Step",type=integer,JSONPath=`.status.currentStep`
// +kubebuilder:printcolumn:name="Weight",type=integer,JSONPath=`.status.stepWeight`
// +kubebuilder:printcolumn:name="Control",type=string,JSONPath=`.status.summary.control`
// +kubebuilder:printcolumn:name="Variants",type=string,JSONPath=`.status.summary.variants`
// +kubebuilder:printcolumn:name="Touchpoint",type=string,JSONPath=`.spec.touchpoint`,priority=10
// +kubebuilder:printcolumn:name="Route",type=string,JSONPath=`.spec.traffic.gatewayAPI.httpRoute`,priority=10
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=10
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// CXExperiment is a customer-experience experiment: variants of an experience
// rolled out step by step to customer segments, judged on customers'
// satisfaction against the control, and rolled back when it drops.
type CXExperiment struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what the product team declares.
	// +required
	Spec CXExperimentSpec `json:"spec"`

	// status is the observed state.
	// +optional
	Status CXExperimentStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// CXExperimentList is a list of CXExperiments.
type CXExperimentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CXExperiment `json:"items"`
}
