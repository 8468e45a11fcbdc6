package v1alpha1

// Condition types of CXExperiment. Ready, Reconciling and Stalled follow
// kstatus (sigs.k8s.io/cli-utils/pkg/kstatus), so Argo CD, Flux and kubectl
// wait read an experiment's health without knowing Rapport: Reconciling and
// Stalled are "abnormal-true" (present only while True). The others say which
// part of the work is stuck.
//
// kstatus reads them as: Current while paused, while awaiting a promotion
// and once Succeeded; InProgress while Reconciling (Pending, a step
// collecting evidence, holding undecided) or while observedGeneration lags
// behind (the last reconcile of this generation failed); Failed when Stalled
// (an invalid spec, a conflict, a route that cannot carry the split, or
// rolled back in every segment).
const (
	// ConditionReady is True when the experiment is healthy and where it
	// should be: a step running without errors, paused, awaiting a
	// promotion, or Succeeded. False when Pending, RolledBack or Failed, or
	// while an error (a missing reference, a route write, the reconcile)
	// blocks it, with that reason.
	ConditionReady = "Ready"
	// ConditionReconciling is True while a run is in progress and moving:
	// Pending (waiting to start, or for a missing reference), a step
	// collecting evidence, or holding undecided. Absent when Paused,
	// awaiting a promotion, Succeeded, RolledBack or Failed.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the experiment cannot go on without a
	// human: Failed (reason: the cause) or RolledBack in every segment
	// (reason RolledBack; retry with the cx.rapport.dev/retry annotation).
	// Absent otherwise.
	ConditionStalled = "Stalled"
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
	ReasonResolved              = "Resolved"
	ReasonApplied               = "Applied"
	ReasonApplyFailed           = "ApplyFailed"
	ReasonRestored              = "Restored"
	ReasonMeasured              = "Measured"
	ReasonNoData                = "NoData"
	ReasonMeasurementFailed     = "MeasurementFailed"
	ReasonNotMeasured           = "NotMeasured"
	ReasonSucceeded             = "Succeeded"
	ReasonHealthy               = "Healthy"
	// ReasonReconcileError: the reconcile failed (e.g. reading the cluster);
	// it is retried with backoff. The message has the error.
	ReasonReconcileError = "ReconcileError"
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
