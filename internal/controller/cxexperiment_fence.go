package controller

import (
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// The feedback collector counts answers by its cache's copy of the
// experiment when the experiment's ResponseTally carries a fence that copy
// has reached (cxv1.AnnotationExperimentFence), and reads the experiment
// from the API server at every write otherwise. The controller keeps the
// fence at or past every status the collector must count by:
//   - before every traffic change, at the status written ahead of it
//     (applyAhead), so that answers served under new weights are never
//     counted by a copy that has not seen their epoch;
//   - after a status write that changed what the collector reads (the run,
//     its phase and settings, a segment's epochs);
//   - at the first reconcile of the experiment by this manager, after a
//     raise that failed, and on a tally that has none yet (the collector
//     created it), at the experiment as the API server has it.
//
// The raise is a merge patch of the annotation alone: the collector's
// writes, which carry the tally's resourceVersion, never make it conflict;
// theirs conflict with it instead, and read again.

// collectorViewChanged reports whether a status write from a to b changes
// what the collector counts by.
func collectorViewChanged(a, b *cxv1.CXExperimentStatus) bool {
	if a.Run != b.Run || a.Phase != b.Phase || len(a.Segments) != len(b.Segments) ||
		!equality.Semantic.DeepEqual(a.Settings, b.Settings) {
		return true
	}
	for i := range a.Segments {
		if a.Segments[i].Name != b.Segments[i].Name || !equality.Semantic.DeepEqual(a.Segments[i].Epochs, b.Segments[i].Epochs) {
			return true
		}
	}
	return false
}

// raiseFence raises the fence of exp's tally to exp's resourceVersion. exp
// must be as the API server has it now (returned by a write, or read from
// it): every earlier fence is then at most that version, so the fence never
// goes down, and the patch needs no read of the tally first. A tally not
// created yet needs none: the collector reads the API server for the write
// that creates it, and for every write over a tally without a fence.
func (r *CXExperimentReconciler) raiseFence(ctx context.Context, exp *cxv1.CXExperiment) error {
	nn := client.ObjectKeyFromObject(exp)
	tally := &cxv1.ResponseTally{}
	switch err := r.Get(ctx, nn, tally); {
	case apierrors.IsNotFound(err):
		// None cached: none exists, or the collector created it a moment
		// ago, without a fence (it reads the API server for such a tally;
		// the fence phase fences it once it is cached).
		return nil
	case err == nil && tally.FencedAt(exp):
		return nil // the cache is never ahead of the API server, and fences only rise
	}
	raise, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		cxv1.AnnotationExperimentFence: exp.ResourceVersion}}})
	if err != nil {
		return err
	}
	tally = &cxv1.ResponseTally{ObjectMeta: metav1.ObjectMeta{Namespace: nn.Namespace, Name: nn.Name}}
	if err := r.Patch(ctx, tally, client.RawPatch(types.MergePatchType, raise)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("raise the fence of ResponseTally %s: %w", nn.Name, err)
	}
	return nil
}

// raiseFenceAfterWrite raises the fence after a status write that changed
// what the collector counts by. A failed raise is retried by the fence
// phase of the next reconciles, from the API server's copy.
func (r *CXExperimentReconciler) raiseFenceAfterWrite(ctx context.Context, exp *cxv1.CXExperiment) error {
	if err := r.raiseFence(ctx, exp); err != nil {
		r.fenced.Delete(client.ObjectKeyFromObject(exp))
		return err
	}
	return nil
}

// fence is the last phase of a live run's reconcile. It raises the fence,
// to the experiment as the API server has it, at the first reconcile of
// the experiment by this manager (a leader that stopped between a status
// write and its raise, or an older version that did not raise, may have
// left it behind), after a raise that failed, and on a tally the collector
// created since (the controller had none to fence when it wrote). It comes
// last so that it never holds a decision or a rollback; a failure is
// retried with the reconcile.
func (r *CXExperimentReconciler) fence(ctx context.Context, sc *scope) (ctrl.Result, bool, error) {
	if p := sc.exp.Status.Phase; p != cxv1.PhaseProgressing && p != cxv1.PhasePaused {
		return ctrl.Result{}, false, nil
	}
	nn := client.ObjectKeyFromObject(sc.exp)
	tally := &cxv1.ResponseTally{}
	if err := r.Get(ctx, nn, tally); apierrors.IsNotFound(err) {
		// None yet: the collector reads the API server for the write that
		// creates it, and the controller fences it once it is cached.
		r.fenced.Store(nn, struct{}{})
		return ctrl.Result{}, false, nil
	} else if err != nil {
		return ctrl.Result{}, false, fmt.Errorf("read ResponseTally %s: %w", nn.Name, err)
	}
	_, has := tally.Annotations[cxv1.AnnotationExperimentFence]
	if _, done := r.fenced.Load(nn); done && has {
		return ctrl.Result{}, false, nil
	}
	exp := &cxv1.CXExperiment{}
	if err := r.uncached().Get(ctx, nn, exp); err != nil {
		return ctrl.Result{}, false, client.IgnoreNotFound(err)
	}
	if err := r.raiseFence(ctx, exp); err != nil {
		return ctrl.Result{}, false, err
	}
	r.fenced.Store(nn, struct{}{})
	ctrl.LoggerFrom(ctx).V(1).Info("raised the tally's fence", "resourceVersion", exp.ResourceVersion)
	return ctrl.Result{}, false, nil
}

// uncached reads from the API server (APIReader), or through the client
// when there is none (tests that build the reconciler by hand).
func (r *CXExperimentReconciler) uncached() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}
