package controller

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// statusFaults makes the reconciler's status writes fail in chosen
// namespaces, as an API server that accepted a route write and then went
// away would. The API server itself is real; only the reconciler's client
// is interposed.
var statusFaults = &faults{namespaces: map[string]bool{}}

type faults struct {
	mu         sync.Mutex
	namespaces map[string]bool
	refused    atomic.Int64
}

func (f *faults) set(ns string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.namespaces[ns] = on
}

func (f *faults) failing(ns string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.namespaces[ns]
}

// routeFaults makes the reconciler's HTTPRoute writes (patch, apply,
// delete) fail in chosen namespaces, as a webhook or an API server refusing
// them would.
var routeFaults = &faults{namespaces: map[string]bool{}}

// refuse counts a refused write and returns its error.
func (f *faults) refuse() error {
	f.refused.Add(1)
	return errors.New("injected fault: the API server is unavailable")
}

// faultyClient wraps c so that CXExperiment status patches (statusFaults)
// and HTTPRoute writes (routeFaults) fail where set.
func faultyClient(c client.Client) client.Client {
	isRoute := func(obj any) (string, bool) {
		if r, ok := obj.(*gwv1.HTTPRoute); ok {
			return r.Namespace, true
		}
		if u, ok := obj.(interface {
			GetKind() string
			GetNamespace() string
		}); ok && u.GetKind() == "HTTPRoute" {
			return u.GetNamespace(), true
		}
		return "", false
	}
	return interceptor.NewClient(withoutWatch{c}, interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			if _, ok := obj.(*cxv1.CXExperiment); ok && sub == "status" && statusFaults.failing(obj.GetNamespace()) {
				return statusFaults.refuse()
			}
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if ns, ok := isRoute(obj); ok && routeFaults.failing(ns) {
				return routeFaults.refuse()
			}
			return c.Patch(ctx, obj, patch, opts...)
		},
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			if ns, ok := isRoute(obj); ok && routeFaults.failing(ns) {
				return routeFaults.refuse()
			}
			return c.Apply(ctx, obj, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			if ns, ok := isRoute(obj); ok && routeFaults.failing(ns) {
				return routeFaults.refuse()
			}
			return c.Delete(ctx, obj, opts...)
		},
	})
}

// withoutWatch adapts a manager's client to interceptor.NewClient.
type withoutWatch struct{ client.Client }

func (withoutWatch) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	return nil, errors.New("watch is not supported by this client")
}
