package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
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

	// behind holds the experiments whose cached copy is known to be behind
	// the API server (a status write from it conflicted): they are read from
	// the API server until the cache has caught up (see readExperiment).
	behind sync.Map // types.NamespacedName -> struct{}
	// fenced holds the experiments whose tally's fence this manager has
	// raised (or found no tally to raise) with no raise failing since
	// (see cxexperiment_fence.go).
	fenced sync.Map // types.NamespacedName -> struct{}
}

// maxRetryDelay caps the work queue's backoff after failed reconciles
// (5 ms doubling; controller-runtime's default goes up to 16 minutes). An
// API-server outage of 30 s fails a reconcile about 13 times: with the
// default, the first try after the outage could come 40-80 s after it ends,
// and later ones minutes apart while the cache catches up.
const maxRetryDelay = 10 * time.Second

// readExperiment reads the experiment from the cache, or from the API
// server once a status write has conflicted, until the cache holds the same
// version. A conflict means the cache was behind; after an API-server
// outage it can stay behind for up to a minute while its informer re-lists,
// and every reconcile from it would conflict again, holding every decision
// (a rollback included) until then.
func (r *CXExperimentReconciler) readExperiment(ctx context.Context, nn types.NamespacedName, exp *cxv1.CXExperiment) error {
	if _, behind := r.behind.Load(nn); !behind || r.APIReader == nil {
		return r.Get(ctx, nn, exp)
	}
	if err := r.APIReader.Get(ctx, nn, exp); err != nil {
		return err
	}
	cached := &cxv1.CXExperiment{}
	if err := r.Get(ctx, nn, cached); err == nil && cached.ResourceVersion == exp.ResourceVersion {
		r.behind.Delete(nn) // caught up: the next reconcile reads the cache again
	}
	return nil
}

// +kubebuilder:rbac:groups=cx.rapport.dev,resources=cxexperiments,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=cx.rapport.dev,resources=cxexperiments/status,verbs=get;patch
// +kubebuilder:rbac:groups=cx.rapport.dev,resources=cxexperiments/finalizers,verbs=update
// +kubebuilder:rbac:groups=cx.rapport.dev,resources=responsetallies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;create;update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments/scale,verbs=get;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile moves one experiment forward. It reads like a table of contents:
// the work is in the phases (resolve, measure, decide, route), the status is
// projected and written once, in the defer (cxexperiment_status.go).
func (r *CXExperimentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	exp := &cxv1.CXExperiment{}
	if err := r.readExperiment(ctx, req.NamespacedName, exp); err != nil {
		if apierrors.IsNotFound(err) {
			r.behind.Delete(req.NamespacedName)
			r.fenced.Delete(req.NamespacedName)
		}
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
		if err := r.patchStatus(ctx, sc, retErr); err != nil {
			retErr = kerrors.NewAggregate([]error{retErr, err})
			return
		}
		r.announce(sc)
		metrics.ObserveExperiment(sc.exp)
		r.recordHistory(ctx, sc)
		if sc.fenceErr != nil {
			retErr = kerrors.NewAggregate([]error{retErr, sc.fenceErr})
		}
	}()

	rollout.Initialize(&exp.Status)
	if err := sc.loadSettings(); err != nil {
		// Stalled until the spec changes: retrying cannot help.
		r.fail(sc, cxv1.ReasonInvalidSpec, err.Error())
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	return r.runPhases(ctx, sc, []phase{r.resolve, r.checkConflicts, r.measure, r.decide, r.route, r.fence})
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
		WithOptions(controller.Options{
			MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1),
			RateLimiter: workqueue.NewTypedMaxOfRateLimiter(
				workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](5*time.Millisecond, maxRetryDelay),
				// controller-runtime's overall bound: 10 retries per second, bursts of 100.
				&workqueue.TypedBucketRateLimiter[reconcile.Request]{Limiter: rate.NewLimiter(rate.Limit(10), 100)},
			),
		}).
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
