package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// Status is projected in one place: setStatus computes observedGeneration
// and every condition from the scope and the reconcile's error, in the
// deferred status write of Reconcile (and in the write-ahead of a traffic
// change, as the status will read once the change is applied). Each
// condition has a pure setter with explicit inputs and a table test
// (cluster-api's cluster_controller_status.go is the model).

// conditionInputs is what the conditions are computed from.
type conditionInputs struct {
	// refs, measured and routed are the outcomes of this reconcile's parts;
	// a part that did not run (evaluated false) keeps its condition.
	refs, measured, routed outcome
	// err is the reconcile's error, nil when it succeeded.
	err error
	// waitingMessage explains status.waiting (rollout's WaitingMessage).
	waitingMessage string
	// generation stamps the conditions: the experiment's generation once
	// the reconcile succeeded, else the observedGeneration as read.
	generation int64
}

// legacyConditions are condition types older versions wrote.
var legacyConditions = []string{"Progressing"}

// setStatus projects the conditions and observedGeneration. done says the
// reconcile has finished with this generation: it succeeded, or it found
// the spec invalid (a terminal error: the generation was observed and
// judged). Only then does observedGeneration advance, so a GitOps tool
// never reads a failed reconcile as up to date.
func setStatus(sc *scope, reconcileErr error, done bool) {
	exp := sc.exp
	in := conditionInputs{
		refs: sc.refs, measured: sc.measured, routed: sc.routed,
		err: reconcileErr, waitingMessage: sc.decision.WaitingMessage,
		generation: sc.before.ObservedGeneration,
	}
	if done {
		in.generation = exp.Generation
	}
	exp.Status.ObservedGeneration = in.generation
	for _, t := range legacyConditions {
		meta.RemoveStatusCondition(&exp.Status.Conditions, t)
	}
	setDomainConditions(exp, in)
	setReadyCondition(exp, in)
	setReconcilingCondition(exp, in)
	setStalledCondition(exp, in)
	setDegradedCondition(exp, in)
	setSampleRatioCondition(exp, in)
	setSettingsChangedCondition(exp, in)
}

// setSampleRatioCondition: True while a segment of a run in progress is held
// by a sample-ratio mismatch; removed otherwise.
func setSampleRatioCondition(exp *cxv1.CXExperiment, in conditionInputs) {
	var o *outcome
	if exp.Status.Phase == cxv1.PhaseProgressing || exp.Status.Phase == cxv1.PhasePaused {
		var parts []string
		for _, seg := range exp.Status.Segments {
			if sr := seg.SampleRatio; sr != nil && sr.Mismatch {
				parts = append(parts, fmt.Sprintf("segment %s in epoch %d: %s", seg.Name, sr.Epoch, sr.Shares))
			}
		}
		if len(parts) > 0 {
			o = ptr(succeeded(cxv1.ReasonResponseSharesOffWeights,
				"responses per variant do not match the traffic weights (%s): these segments cannot advance or be promoted, rollbacks still apply. "+
					"Likely causes: the survey is broken or missing on one variant, stickiness or a cache keeps customers on one variant, "+
					"or answers are attributed to the wrong variant", strings.Join(parts, "; ")))
		}
	}
	setAbnormalCondition(exp, cxv1.ConditionSampleRatioMismatch, o, in.generation)
}

// setSettingsChangedCondition: True while spec.satisfaction differs from
// the settings the current run is judged by; removed otherwise.
func setSettingsChangedCondition(exp *cxv1.CXExperiment, in conditionInputs) {
	var o *outcome
	if !exp.Status.Phase.Terminal() && exp.Status.Phase != cxv1.PhasePending {
		if changed, diff := exp.SettingsChanged(); changed {
			o = ptr(succeeded(cxv1.ReasonAppliesToNextRun,
				"spec.satisfaction changed during run %d (%s): this run is still judged by the settings it started with (status.settings); "+
					"the change applies to the next run: kubectl cx retry %s", exp.Status.Run, diff, exp.Name))
		}
	}
	setAbnormalCondition(exp, cxv1.ConditionSettingsChanged, o, in.generation)
}

// finished reports whether a reconcile that returned err is done with the
// generation: it succeeded, or ended with a terminal error.
func finished(err error) bool {
	return err == nil || errors.Is(err, reconcile.TerminalError(nil))
}

// setDomainConditions sets ReferencesResolved, Measured and TrafficRouted
// from the parts that ran in this reconcile.
func setDomainConditions(exp *cxv1.CXExperiment, in conditionInputs) {
	for _, c := range []struct {
		t string
		o outcome
	}{{cxv1.ConditionReferencesResolved, in.refs}, {cxv1.ConditionMeasured, in.measured}, {cxv1.ConditionTrafficRouted, in.routed}} {
		if c.o.evaluated {
			setCondition(exp, c.t, c.o, in.generation)
		}
	}
}

// setReadyCondition: True while healthy and where it should be (a step
// running, paused, awaiting a promotion, Succeeded); False when Pending,
// RolledBack, Failed, or blocked by an error.
func setReadyCondition(exp *cxv1.CXExperiment, in conditionInputs) {
	setCondition(exp, cxv1.ConditionReady, readiness(exp, in), in.generation)
}

func readiness(exp *cxv1.CXExperiment, in conditionInputs) outcome {
	st := &exp.Status
	switch st.Phase {
	case cxv1.PhaseFailed:
		return failureCause(exp, in)
	case cxv1.PhaseRolledBack:
		return failed(cxv1.ReasonRolledBack, "%s", rollbackSummary(st))
	}
	if o, bad := in.blocking(); bad {
		return o
	}
	switch st.Phase {
	case cxv1.PhaseSucceeded:
		return succeeded(cxv1.ReasonSucceeded, "promoted: %s", formatWeights(exp))
	case cxv1.PhasePending, "":
		return failed(cxv1.ReasonStepRunning, "waiting to start")
	}
	return succeeded(waitingReason(st), "%s", in.waitingMessage)
}

// setReconcilingCondition: True while the run is in progress and moving
// (Pending, a step collecting evidence, holding undecided); removed when
// Paused, awaiting a promotion, or ended.
func setReconcilingCondition(exp *cxv1.CXExperiment, in conditionInputs) {
	st := &exp.Status
	switch {
	case st.Phase == cxv1.PhasePending || st.Phase == "":
		o := succeeded(cxv1.ReasonStepRunning, "starting")
		if b, bad := in.blocking(); bad {
			o = succeeded(b.reason, "waiting to start: %s", b.message)
		}
		setAbnormalCondition(exp, cxv1.ConditionReconciling, &o, in.generation)
	case st.Phase == cxv1.PhaseProgressing && st.Waiting != cxv1.WaitingPromotion && st.Waiting != cxv1.WaitingPaused:
		setAbnormalCondition(exp, cxv1.ConditionReconciling, ptr(succeeded(waitingReason(st), "%s", in.waitingMessage)), in.generation)
	default:
		setAbnormalCondition(exp, cxv1.ConditionReconciling, nil, in.generation)
	}
}

// setStalledCondition: True when only a human can move the experiment on:
// Failed (with the cause) or RolledBack in every segment; removed otherwise.
func setStalledCondition(exp *cxv1.CXExperiment, in conditionInputs) {
	st := &exp.Status
	var o *outcome
	switch st.Phase {
	case cxv1.PhaseFailed:
		cause := failureCause(exp, in)
		o = ptr(succeeded(cause.reason, "%s", cause.message))
	case cxv1.PhaseRolledBack:
		o = ptr(succeeded(cxv1.ReasonRolledBack, "%s; retry with the %s annotation (kubectl cx retry)", rollbackSummary(st), cxv1.AnnotationRetry))
	}
	setAbnormalCondition(exp, cxv1.ConditionStalled, o, in.generation)
}

// setAbnormalCondition sets a kstatus "abnormal-true" condition
// (Reconciling, Stalled): present only while True, removed when o is nil.
func setAbnormalCondition(exp *cxv1.CXExperiment, t string, o *outcome, generation int64) {
	if o == nil {
		meta.RemoveStatusCondition(&exp.Status.Conditions, t)
		return
	}
	setCondition(exp, t, *o, generation)
}

func ptr[T any](v T) *T { return &v }

// setDegradedCondition: True when an error blocks measuring or routing, or
// a variant was rolled back somewhere.
func setDegradedCondition(exp *cxv1.CXExperiment, in conditionInputs) {
	st := &exp.Status
	o := failed(cxv1.ReasonHealthy, "no variant rolled back, no error")
	switch b, bad := in.blocking(); {
	case bad:
		o = succeeded(b.reason, "%s", b.message)
	case in.measured.evaluated && !in.measured.ok:
		o = succeeded(in.measured.reason, "%s", in.measured.message)
	case len(st.Rollbacks) > 0:
		reason := cxv1.ReasonPartialRollback
		if st.Phase == cxv1.PhaseRolledBack {
			reason = cxv1.ReasonRolledBack
		}
		o = succeeded(reason, "%s", rollbackSummary(st))
	}
	setCondition(exp, cxv1.ConditionDegraded, o, in.generation)
}

// blocking returns the first failure of this reconcile: a missing or
// unusable reference, a failed route write, or another error.
func (in conditionInputs) blocking() (outcome, bool) {
	for _, o := range []outcome{in.refs, in.routed} {
		if o.evaluated && !o.ok {
			return o, true
		}
	}
	if in.err != nil {
		return failed(cxv1.ReasonReconcileError, "%v; retrying", in.err), true
	}
	return outcome{}, false
}

// failureCause says why a Failed experiment failed: this reconcile's
// failure, else the ReferencesResolved condition recorded when it failed
// (an ended experiment no longer resolves its references).
func failureCause(exp *cxv1.CXExperiment, in conditionInputs) outcome {
	if c := meta.FindStatusCondition(exp.Status.Conditions, cxv1.ConditionReferencesResolved); c != nil && c.Status == metav1.ConditionFalse && !in.refs.evaluated {
		return failed(c.Reason, "%s", c.Message)
	}
	if o, bad := in.blocking(); bad {
		return o
	}
	return failed(cxv1.ReasonInvalidSpec, "the experiment failed; fix the cause and retry with the %s annotation", cxv1.AnnotationRetry)
}

func waitingReason(st *cxv1.CXExperimentStatus) string {
	if st.Waiting != "" {
		return string(st.Waiting)
	}
	return cxv1.ReasonStepRunning
}

// setCondition sets a condition from an outcome (ok: True).
func setCondition(exp *cxv1.CXExperiment, t string, o outcome, generation int64) {
	status := metav1.ConditionFalse
	if o.ok {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&exp.Status.Conditions, metav1.Condition{
		Type: t, Status: status, Reason: o.reason, Message: truncate(o.message), ObservedGeneration: generation,
	})
}

func truncate(s string) string {
	if len(s) > 32000 { // metav1.Condition messages are limited to 32768 bytes
		return s[:32000] + "..."
	}
	return s
}

func rollbackSummary(st *cxv1.CXExperimentStatus) string {
	if len(st.Rollbacks) == 0 {
		return "rolled back"
	}
	last := st.Rollbacks[len(st.Rollbacks)-1]
	return fmt.Sprintf("%d rollback(s); last: %s in %s (%s): %s", len(st.Rollbacks), last.Variant, last.Segment, last.Reason, last.Evidence)
}

// patchStatus projects the status (setStatus) and writes it: the one status
// write of a reconcile, in its defer.
func (r *CXExperimentReconciler) patchStatus(ctx context.Context, sc *scope, reconcileErr error) error {
	setStatus(sc, reconcileErr, finished(reconcileErr))
	before := sc.orig
	changed := collectorViewChanged(&before.Status, &sc.exp.Status)
	if err := r.writeStatus(ctx, sc, true); err != nil {
		return err
	}
	// writeStatus replaces orig with what it wrote; an experiment that is
	// gone was not written, and there is nothing to fence.
	if written := sc.orig != before; changed && written {
		sc.fenceErr = r.raiseFenceAfterWrite(ctx, sc.exp)
	}
	return nil
}

// writeStatus patches the status; a missing experiment is an error unless
// ignoreMissing (the write-ahead must not change traffic for an experiment
// that is gone: its finalizer has already restored the route).
func (r *CXExperimentReconciler) writeStatus(ctx context.Context, sc *scope, ignoreMissing bool) error {
	if equality.Semantic.DeepEqual(sc.orig.Status, sc.exp.Status) {
		return nil
	}
	// The patch carries the resourceVersion it was computed from: a
	// reconcile that started from a stale copy (the cache lagging behind our
	// own last write, or a write whose answer was lost) gets a Conflict and
	// runs again on fresh state, instead of splicing its decision into a
	// newer one (a merge patch replaces whole lists such as segments).
	if err := r.Status().Patch(ctx, sc.exp, client.MergeFromWithOptions(sc.orig, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsNotFound(err) && ignoreMissing {
			return nil
		}
		if apierrors.IsConflict(err) {
			r.behind.Store(client.ObjectKeyFromObject(sc.exp), struct{}{}) // reconciles read the API server until the cache catches up
			return fmt.Errorf("patch status: the experiment changed since it was read; reconciling again: %w", err)
		}
		return fmt.Errorf("patch status: %w", err)
	}
	sc.orig = sc.exp.DeepCopy()
	return nil
}
