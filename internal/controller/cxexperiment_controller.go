package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/assignment"
	"github.com/rapport-dev/rapport/internal/measure"
	"github.com/rapport-dev/rapport/internal/metrics"
	"github.com/rapport-dev/rapport/internal/rollout"
	"github.com/rapport-dev/rapport/internal/routing"
	"github.com/rapport-dev/rapport/internal/routing/gatewayapi"
	"github.com/rapport-dev/rapport/internal/routing/replicas"
)

// CXExperimentReconciler runs experiments: it measures satisfaction, decides
// the next step and routes traffic accordingly.
type CXExperimentReconciler struct {
	client.Client
	// APIReader reads without the cache (Secrets for Prometheus tokens).
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	// Collector reads the tallies of the built-in feedback collector.
	Collector measure.Source
	// Prometheus builds a source for a SatisfactionMetric.
	Prometheus func(q cxv1.PrometheusQuery, bearerToken string) (measure.Source, error)
	// Guardrails reads guardrail values.
	Guardrails measure.GuardrailReader
	// AssignmentKeys reads and creates the experiments' assignment signing
	// keys (default: uncached reads through APIReader, writes through Client).
	AssignmentKeys *assignment.Keys
	// GatewayAPI is false when the cluster has no HTTPRoute CRD; experiments
	// that need it then get a clear condition.
	GatewayAPI bool
	// MaxConcurrentReconciles is the number of workers (default 4). The work
	// queue never runs two reconciles of one experiment at once.
	MaxConcurrentReconciles int
}

// +kubebuilder:rbac:groups=cx.rapport.dev,resources=cxexperiments,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=cx.rapport.dev,resources=cxexperiments/status,verbs=get;patch
// +kubebuilder:rbac:groups=cx.rapport.dev,resources=cxexperiments/finalizers,verbs=update
// +kubebuilder:rbac:groups=cx.rapport.dev,resources=responsetallies,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments/scale,verbs=get;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile moves one experiment forward. It reads like a table of contents:
// the work is in the phases (cxexperiment_phases.go).
func (r *CXExperimentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	exp := &cxv1.CXExperiment{}
	if err := r.Get(ctx, req.NamespacedName, exp); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	sc := newScope(exp, r.Clock.Now())

	if !exp.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, sc)
	}
	if !controllerutil.ContainsFinalizer(exp, cxv1.Finalizer) {
		patch := client.MergeFrom(exp.DeepCopy())
		controllerutil.AddFinalizer(exp, cxv1.Finalizer)
		if err := r.Patch(ctx, exp, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
		sc.orig = exp.DeepCopy() // the patch moved resourceVersion; status diffs from here
	}
	defer func() {
		// Status (written ahead of any traffic change, in the route phase,
		// and here), then events and metrics: a transition is announced only
		// once it is recorded.
		if sc.skipStatus {
			return // the write-ahead failed: nothing to record or announce
		}
		if err := r.patchStatus(ctx, sc); err != nil {
			retErr = kerrors.NewAggregate([]error{retErr, err})
			return
		}
		r.announce(sc)
		metrics.ObserveExperiment(sc.exp)
	}()

	if exp.Status.Phase == "" {
		exp.Status.Phase, exp.Status.Run = cxv1.PhasePending, 1
	}
	if err := sc.loadSettings(); err != nil {
		r.fail(sc, cxv1.ReasonInvalidSpec, err.Error())
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	return r.runPhases(ctx, sc, []phase{r.resolve, r.checkConflicts, r.measure, r.decide, r.route})
}

// phase is one stage of a reconcile. A phase that returns stop=true ends
// the reconcile (after the status is written).
type phase func(ctx context.Context, sc *scope) (result ctrl.Result, stop bool, err error)

// runPhases runs phases in order and merges their results: the lowest
// non-zero RequeueAfter wins.
func (r *CXExperimentReconciler) runPhases(ctx context.Context, sc *scope, phases []phase) (ctrl.Result, error) {
	var res ctrl.Result
	for _, p := range phases {
		pr, stop, err := p(ctx, sc)
		res = lowestRequeue(res, pr)
		if err != nil {
			return res, err
		}
		if stop {
			break
		}
	}
	setConditions(sc)
	if sc.routeErr != nil {
		// A failed traffic change is retried with backoff once status is written.
		return ctrl.Result{}, sc.routeErr
	}
	return res, nil
}

func lowestRequeue(a, b ctrl.Result) ctrl.Result {
	if b.RequeueAfter > 0 && (a.RequeueAfter == 0 || b.RequeueAfter < a.RequeueAfter) {
		a.RequeueAfter = b.RequeueAfter
	}
	return a
}

// patchStatus writes the status once, as a merge patch of what changed.
func (r *CXExperimentReconciler) patchStatus(ctx context.Context, sc *scope) error {
	return r.writeStatus(ctx, sc, true)
}

// writeStatus patches the status; a missing experiment is an error unless
// ignoreMissing (the write-ahead must not change traffic for an experiment
// that is gone: its finalizer has already restored the route).
func (r *CXExperimentReconciler) writeStatus(ctx context.Context, sc *scope, ignoreMissing bool) error {
	if sc.exp.DeletionTimestamp.IsZero() && sc.statusErr == nil {
		sc.exp.Status.ObservedGeneration = sc.exp.Generation
	}
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
			return fmt.Errorf("patch status: the experiment changed since it was read; reconciling again: %w", err)
		}
		return fmt.Errorf("patch status: %w", err)
	}
	sc.orig = sc.exp.DeepCopy()
	return nil
}

// router returns the Router of the experiment's traffic mode.
func (r *CXExperimentReconciler) router(exp *cxv1.CXExperiment) (routing.Router, error) {
	switch {
	case exp.Spec.Traffic.GatewayAPI != nil:
		if !r.GatewayAPI {
			return nil, routing.Errorf(cxv1.ReasonRouteNotFound,
				"the cluster has no Gateway API HTTPRoute CRD; install Gateway API (v1.x) and restart Rapport, or use spec.traffic.replicas")
		}
		return &gatewayapi.Router{Client: r.Client, Scheme: r.Scheme}, nil
	case exp.Spec.Traffic.Replicas != nil:
		return &replicas.Router{Client: r.Client}, nil
	default:
		return nil, errors.New("spec.traffic: set exactly one of gatewayAPI or replicas")
	}
}

// event records a Kubernetes Event on the experiment.
func (r *CXExperimentReconciler) event(exp *cxv1.CXExperiment, e rollout.Event) {
	if r.Recorder == nil {
		return
	}
	kind := corev1.EventTypeNormal
	if e.Warning {
		kind = corev1.EventTypeWarning
	}
	note := e.Message
	if len(note) > 1000 { // events.k8s.io notes are limited to 1 kB
		note = note[:997] + "..."
	}
	r.Recorder.Eventf(exp, nil, kind, e.Reason, e.Reason, "%s", note)
}

// SetupWithManager registers the controller and its watches.
func (r *CXExperimentReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := setupIndexes(context.Background(), mgr); err != nil {
		return err
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.MaxConcurrentReconciles == 0 {
		r.MaxConcurrentReconciles = 4
	}
	if r.AssignmentKeys == nil {
		r.AssignmentKeys = &assignment.Keys{Reader: r.APIReader, Writer: r.Client}
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&cxv1.CXExperiment{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		// Each collector commit updates the tally and wakes the experiment at once.
		Owns(&cxv1.ResponseTally{}).
		Watches(&cxv1.CustomerSegment{}, handler.EnqueueRequestsFromMapFunc(r.byIndex(indexSegments, byName))).
		Watches(&cxv1.SatisfactionMetric{}, handler.EnqueueRequestsFromMapFunc(r.byIndex(indexMetric, byName))).
		WatchesMetadata(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.byIndex(indexServices, byName))).
		WatchesMetadata(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(r.byIndex(indexDeployments, byName))).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1)}).
		Named("cxexperiment")
	if r.GatewayAPI {
		b = b.Owns(&gwv1.HTTPRoute{}).
			Watches(&gwv1.HTTPRoute{}, handler.EnqueueRequestsFromMapFunc(r.byIndex(indexRoute, byName)))
	}
	return b.Complete(r)
}

// requeueMissing is how often an experiment waiting for a missing reference
// looks again (watches usually wake it earlier).
const requeueMissing = 30 * time.Second
