package routing

import (
	"context"
	"errors"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/routing/gatewayapi"
	"github.com/rapport-dev/rapport/internal/routing/replicas"
	"github.com/rapport-dev/rapport/internal/routing/traffic"
)

// Router routes one experiment's traffic. Implementations are idempotent:
// once a plan is applied, Diff of the same plan returns no change.
type Router interface {
	// Record returns what must be stored in status before the first change,
	// so that the change can be undone exactly after a crash (write-ahead).
	// It returns the current record unchanged when it is already complete.
	Record(ctx context.Context, exp *cxv1.CXExperiment) (cxv1.TrafficStatus, error)
	// Diff returns the writes that route traffic as planned, in the order
	// to make them, without making any: none when the plan is applied
	// already. The caller records the decision they carry, then applies
	// them (traffic.Apply).
	Diff(ctx context.Context, exp *cxv1.CXExperiment, plan traffic.Plan) ([]traffic.Change, error)
	// Weights reads the split currently applied.
	Weights(ctx context.Context, exp *cxv1.CXExperiment) (map[string]map[string]int32, error)
	// Finalize undoes the experiment's changes: traffic back to the control,
	// or, with keepPromoted, the promoted split left in place for good.
	Finalize(ctx context.Context, exp *cxv1.CXExperiment, keepPromoted bool) error
}

// Deps is what the routers need.
type Deps struct {
	// Client reads (a manager's client reads from its cache) and writes
	// routes and Deployments.
	Client client.Client
	// Scheme sets owner references on child routes.
	Scheme *runtime.Scheme
	// GatewayAPI says the cluster serves the HTTPRoute CRD.
	GatewayAPI bool
	// ParentRoute is the experiment's HTTPRoute as the caller already read
	// it (the controller reads it once per reconcile); nil: the router
	// reads it when it needs it.
	ParentRoute *gwv1.HTTPRoute
}

// New returns the router of the experiment's traffic mode. It fails, naming
// the fix, when the mode is unknown or the cluster cannot serve it; it never
// falls back to another mode.
func New(exp *cxv1.CXExperiment, deps Deps) (Router, error) {
	if deps.Client == nil {
		return nil, errors.New("routing: no client given")
	}
	t := exp.Spec.Traffic
	switch {
	case t.GatewayAPI != nil && t.Replicas != nil:
		return nil, traffic.Errorf(cxv1.ReasonInvalidSpec, "spec.traffic: set exactly one of gatewayAPI or replicas, not both")
	case t.GatewayAPI != nil:
		if !deps.GatewayAPI {
			return nil, traffic.Errorf(cxv1.ReasonRouteNotFound,
				"the cluster has no Gateway API HTTPRoute CRD; install Gateway API (v1.x) and restart Rapport, or use spec.traffic.replicas")
		}
		if deps.Scheme == nil {
			return nil, errors.New("routing: Gateway API routing needs a scheme (owner references of child routes)")
		}
		return &gatewayapi.Router{Client: deps.Client, Scheme: deps.Scheme, Parent: deps.ParentRoute}, nil
	case t.Replicas != nil:
		return &replicas.Router{Client: deps.Client}, nil
	default:
		return nil, traffic.Errorf(cxv1.ReasonInvalidSpec, "spec.traffic: set exactly one of gatewayAPI or replicas")
	}
}
