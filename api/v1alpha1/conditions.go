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
	// ConditionSampleRatioMismatch is True while some segment's responses
	// per variant do not match the shares its weights predict
	// (status.segments[].sampleRatio): those segments cannot advance or be
	// promoted; rollbacks still happen. The message gives the observed and
	// expected shares and the likely causes. Absent otherwise.
	ConditionSampleRatioMismatch = "SampleRatioMismatch"
	// ConditionSettingsChanged is True while spec.satisfaction judges
	// differently from the settings the current run started with
	// (status.settings): the run keeps being judged by those, and the edit
	// applies to the next run (kubectl cx retry). Absent otherwise.
	ConditionSettingsChanged = "SettingsChanged"
)

// Condition reasons of CXExperiment. Each is a CamelCase word for machines;
// the condition message carries the detail for people.
const (
	// Why a running experiment stays at its step (status.waiting): reasons
	// of Ready (True) and of Reconciling while it is present.

	// ReasonStepRunning: the step collects evidence or holds for its
	// minDuration; also Ready (False) and Reconciling of a Pending
	// experiment about to start.
	ReasonStepRunning = "StepRunning"
	// ReasonPaused: spec.paused holds the experiment at its step.
	ReasonPaused = "Paused"
	// ReasonAwaitingPromotion: every step passed with promotion: Manual; a
	// promote action (cx.rapport.dev/promote) is awaited.
	ReasonAwaitingPromotion = "AwaitingPromotion"
	// ReasonHolding: the step's maxDuration passed undecided and
	// spec.onInconclusive holds it until the evidence decides.
	ReasonHolding = "HoldingInconclusive"

	// How a run ended, and what it left behind.

	// ReasonSucceeded: promoted; each segment routes to its chosen variant
	// (Ready True).
	ReasonSucceeded = "Succeeded"
	// ReasonRolledBack: no variant is active in any segment; all traffic is
	// on the control (Ready False, Stalled and Degraded True).
	ReasonRolledBack = "RolledBack"
	// ReasonPartialRollback: a variant was rolled back in some segment while
	// the experiment goes on or succeeded (Degraded True).
	ReasonPartialRollback = "PartialRollback"
	// ReasonHealthy: no variant rolled back and no error (Degraded False).
	ReasonHealthy = "Healthy"

	// Why the experiment cannot run as specified: it fails (Stalled True)
	// until the spec or the cluster is fixed and it is retried.

	// ReasonInvalidSpec: spec.satisfaction (or another field) does not
	// parse, though the schema let it through (an older CRD); also the
	// traffic mode missing or doubled.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonConflict: an earlier experiment already routes the same
	// customers of the same route or Deployments.
	ReasonConflict = "ConflictingExperiment"
	// ReasonSegmentInvalid: a CustomerSegment cannot be rendered into routes
	// (e.g. a regular expression that does not compile).
	ReasonSegmentInvalid = "SegmentInvalid"
	// ReasonNoControlRule: no rule of the HTTPRoute routes to the control
	// Service (or one that does cannot carry a split).
	ReasonNoControlRule = "NoRuleRoutesToControl"
	// ReasonRouteLimitExceeded: the child route would break a Gateway API
	// limit (rules, matches).
	ReasonRouteLimitExceeded = "RouteLimitExceeded"
	// ReasonStickinessUnsupported: the cluster's HTTPRoute CRD has no
	// sessionPersistence (the Gateway API experimental channel).
	ReasonStickinessUnsupported = "StickinessUnsupported"

	// Missing references: the experiment waits (Pending, Reconciling True;
	// ReferencesResolved and Ready False) until the object appears.

	// ReasonRouteNotFound: the HTTPRoute is missing, or the cluster has no
	// HTTPRoute CRD.
	ReasonRouteNotFound = "RouteNotFound"
	// ReasonServiceNotFound: a variant's Service is missing.
	ReasonServiceNotFound = "ServiceNotFound"
	// ReasonDeploymentNotFound: a variant's Deployment is missing.
	ReasonDeploymentNotFound = "DeploymentNotFound"
	// ReasonSegmentNotFound: a CustomerSegment is missing (or, once
	// promoted, one whose variant the route keeps).
	ReasonSegmentNotFound = "SegmentNotFound"
	// ReasonMetricNotFound: the SatisfactionMetric of
	// spec.satisfaction.source.metricRef is missing.
	ReasonMetricNotFound = "MetricNotFound"
	// ReasonResolved: every reference exists and is usable
	// (ReferencesResolved True).
	ReasonResolved = "Resolved"

	// Traffic (TrafficRouted).

	// ReasonApplied: the desired split is applied (written ahead with the
	// decision, and again once the route write returned).
	ReasonApplied = "Applied"
	// ReasonApplyFailed: writing the route or scaling a Deployment failed;
	// retried with backoff.
	ReasonApplyFailed = "ApplyFailed"

	// Measurement (Measured).

	// ReasonMeasured: satisfaction was read.
	ReasonMeasured = "Measured"
	// ReasonNoData: a polled source answered with no responses for some
	// variants (their verdict is InsufficientData until data arrives).
	ReasonNoData = "NoData"
	// ReasonMeasurementFailed: the source could not be read; every verdict
	// becomes InsufficientData (Degraded True).
	ReasonMeasurementFailed = "MeasurementFailed"

	// ReasonReconcileError: the reconcile failed (e.g. reading the cluster);
	// it is retried with backoff. The message has the error.
	ReasonReconcileError = "ReconcileError"
	// ReasonResponseSharesOffWeights: reason of SampleRatioMismatch.
	ReasonResponseSharesOffWeights = "ResponseSharesOffWeights"
	// ReasonAppliesToNextRun: reason of SettingsChanged.
	ReasonAppliesToNextRun = "AppliesToNextRun"
	// ReasonAssignmentCookieConflict: the route already adds a Set-Cookie
	// header where Rapport must add the assignment cookie.
	ReasonAssignmentCookieConflict = "AssignmentCookieConflict"
)

// Condition reasons of CustomerSegment and SatisfactionMetric (their Ready condition).
const (
	// ReasonValid: what the schema cannot check holds (regular expressions
	// compile; the query template renders).
	ReasonValid = "Valid"
	// ReasonInvalid: it does not; the message names the field and the error.
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
