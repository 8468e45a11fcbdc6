package controller

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// Field indexes of CXExperiment, so that a change of a referenced object
// wakes exactly the experiments that name it.
const (
	indexRoute       = "spec.traffic.gatewayAPI.httpRoute"
	indexSegments    = "spec.segments"
	indexMetric      = "spec.satisfaction.source.metricRef.name"
	indexServices    = "spec.variants.service.name"
	indexDeployments = "spec.variants.deployment"
)

func indexers() map[string]client.IndexerFunc {
	exp := func(f func(e *cxv1.CXExperiment) []string) client.IndexerFunc {
		return func(o client.Object) []string { return f(o.(*cxv1.CXExperiment)) }
	}
	return map[string]client.IndexerFunc{
		indexRoute: exp(func(e *cxv1.CXExperiment) []string {
			if e.Spec.Traffic.GatewayAPI == nil {
				return nil
			}
			return []string{e.Spec.Traffic.GatewayAPI.HTTPRoute}
		}),
		indexSegments: exp(func(e *cxv1.CXExperiment) []string { return e.Spec.Segments }),
		indexMetric: exp(func(e *cxv1.CXExperiment) []string {
			if e.Spec.Satisfaction.Source.MetricRef == nil {
				return nil
			}
			return []string{e.Spec.Satisfaction.Source.MetricRef.Name}
		}),
		indexServices: exp(func(e *cxv1.CXExperiment) []string {
			var out []string
			for _, v := range e.Spec.Variants {
				if v.Service != nil {
					out = append(out, v.Service.Name)
				}
			}
			return out
		}),
		indexDeployments: exp(func(e *cxv1.CXExperiment) []string {
			var out []string
			for _, v := range e.Spec.Variants {
				if v.Deployment != "" {
					out = append(out, v.Deployment)
				}
			}
			return out
		}),
	}
}

func setupIndexes(ctx context.Context, mgr ctrl.Manager) error {
	for name, f := range indexers() {
		if err := mgr.GetFieldIndexer().IndexField(ctx, &cxv1.CXExperiment{}, name, f); err != nil {
			return err
		}
	}
	return nil
}

// byName keys an object by its name.
func byName(o client.Object) string { return o.GetName() }

// byIndex maps an object to the experiments of its namespace whose index
// holds the object's key.
func (r *CXExperimentReconciler) byIndex(index string, key func(client.Object) string) func(context.Context, client.Object) []reconcile.Request {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list cxv1.CXExperimentList
		if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{index: key(o)}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "list experiments for a watched object", "index", index, "object", client.ObjectKeyFromObject(o))
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, e := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&e)})
		}
		return reqs
	}
}
