package v1alpha1

// Condition types of CXExperiment. Ready, Progressing and Degraded follow the
// Kubernetes API conventions; the others say which part of the work is stuck.
const (
	// ConditionReady is True while the experiment runs without errors and
	// when it has Succeeded; False when Pending, RolledBack or Failed, with
	// the reason.
	ConditionReady = "Ready"
	// ConditionProgressing is True while a step is running or waiting.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when a variant was rolled back somewhere, or
	// when an error keeps Rapport from measuring or routing.
	ConditionDegraded = "Degraded"
	// ConditionReferencesResolved says whether the route, Services,
	// Deployments, segments and metric the spec names exist and are usable.
	ConditionReferencesResolved = "ReferencesResolved"
	// ConditionTrafficRouted says whether the desired split is applied.
	ConditionTrafficRouted = "TrafficRouted"
	// ConditionMeasured says whether satisfaction could be read at the last measurement.
	ConditionMeasured = "Measured"
)

// Condition reasons of CXExperiment. Each is a CamelCase word for machines;
// the condition message carries the detail for people.
const (
	ReasonStepRunning           = "StepRunning"
	ReasonPaused                = "Paused"
	ReasonAwaitingPromotion     = "AwaitingPromotion"
	ReasonHolding               = "HoldingInconclusive"
	ReasonPromoted              = "Promoted"
	ReasonRolledBack            = "RolledBack"
	ReasonPartialRollback       = "PartialRollback"
	ReasonAborted               = "Aborted"
	ReasonInvalidSpec           = "InvalidSpec"
	ReasonRouteNotFound         = "RouteNotFound"
	ReasonNoControlRule         = "NoRuleRoutesToControl"
	ReasonServiceNotFound       = "ServiceNotFound"
	ReasonDeploymentNotFound    = "DeploymentNotFound"
	ReasonSegmentNotFound       = "SegmentNotFound"
	ReasonSegmentInvalid        = "SegmentInvalid"
	ReasonMetricNotFound        = "MetricNotFound"
	ReasonConflict              = "ConflictingExperiment"
	ReasonRouteLimitExceeded    = "RouteLimitExceeded"
	ReasonStickinessUnsupported = "StickinessUnsupported"
	// ReasonAssignmentCookieConflict: the route already adds a Set-Cookie
	// header where Rapport must add the assignment cookie.
	ReasonAssignmentCookieConflict = "AssignmentCookieConflict"
	ReasonResolved                 = "Resolved"
	ReasonApplied                  = "Applied"
	ReasonApplyFailed              = "ApplyFailed"
	ReasonRestored                 = "Restored"
	ReasonMeasured                 = "Measured"
	ReasonNoData                   = "NoData"
	ReasonMeasurementFailed        = "MeasurementFailed"
	ReasonNotMeasured              = "NotMeasured"
	ReasonSucceeded                = "Succeeded"
	ReasonHealthy                  = "Healthy"
)

// Condition types and reasons of CustomerSegment and SatisfactionMetric.
const (
	ReasonValid   = "Valid"
	ReasonInvalid = "Invalid"
)

// Annotations that ask for a manual action. The value is any token that
// changes each time (kubectl cx writes a timestamp); each token is acted on
// once and recorded in status.handledActions.
const (
	// AnnotationPromote promotes at the last step of a Manual-promotion
	// experiment, or skips the remaining steps of a running one.
	AnnotationPromote = "cx.rapport.dev/promote"
	// AnnotationAbort rolls every variant back now.
	AnnotationAbort = "cx.rapport.dev/abort"
	// AnnotationRetry starts a new run of a RolledBack or Failed experiment.
	AnnotationRetry = "cx.rapport.dev/retry"
)

// Labels Rapport uses.
const (
	// LabelFeedbackToken marks a Secret (key "token") whose value authorises
	// posting feedback to the experiments of its namespace.
	LabelFeedbackToken = "cx.rapport.dev/feedback-token"
	// LabelExperiment is set on objects Rapport creates for an experiment.
	LabelExperiment = "cx.rapport.dev/experiment"
	// LabelManagedBy marks objects created by Rapport.
	LabelManagedBy = "app.kubernetes.io/managed-by"
)

// Finalizer lets Rapport restore traffic before an experiment is deleted.
const Finalizer = "cx.rapport.dev/finalizer"

// FeedbackTokenKey is the data key of a feedback token Secret.
const FeedbackTokenKey = "token"

// The signed assignment: a Secret per experiment holds its HMAC key.
const (
	// LabelAssignmentKey marks the Secret Rapport creates (owned by the
	// experiment) holding the key that signs the experiment's assignment
	// cookies.
	LabelAssignmentKey = "cx.rapport.dev/assignment-key"
	// AssignmentKeyDataKey is the data key of that Secret.
	AssignmentKeyDataKey = "key"
	// SecretTypeAssignmentKey is the type of that Secret.
	SecretTypeAssignmentKey = "cx.rapport.dev/assignment-key"
)

// Condition reasons of FeedbackSource (Ready).
const (
	// ReasonSecretNotFound: the Secret of spec.secretRef does not exist.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonSecretKeyMissing: the Secret lacks a key the provider needs.
	ReasonSecretKeyMissing = "SecretKeyMissing"
	// ReasonMappingInvalid: an expression of spec.mapping does not compile.
	ReasonMappingInvalid = "MappingInvalid"
)
