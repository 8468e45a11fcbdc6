package controller

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
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

// fenceFaults makes the reconciler's ResponseTally patches (the raises of
// the tally's fence) fail in chosen namespaces.
var fenceFaults = &faults{namespaces: map[string]bool{}}

// cacheLag makes the reconciler's cached reads of chosen experiments return
// the copy they had when the lag began, as an informer re-listing after an
// API-server outage does (for up to a minute). Reads through the APIReader
// are not affected.
var cacheLag = &lag{frozen: map[types.NamespacedName]*cxv1.CXExperiment{}}

type lag struct {
	mu     sync.Mutex
	frozen map[types.NamespacedName]*cxv1.CXExperiment
	served atomic.Int64 // lagging copies handed to the reconciler
}

func (l *lag) freeze(exp *cxv1.CXExperiment) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.frozen[client.ObjectKeyFromObject(exp)] = exp.DeepCopy()
}

func (l *lag) thaw(nn types.NamespacedName) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.frozen, nn)
}

// read copies the lagging copy of nn into exp, if nn lags.
func (l *lag) read(nn types.NamespacedName, exp *cxv1.CXExperiment) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	old, ok := l.frozen[nn]
	if ok {
		old.DeepCopyInto(exp)
		l.served.Add(1)
	}
	return ok
}

// refuse counts a refused write and returns its error.
func (f *faults) refuse() error {
	f.refused.Add(1)
	return errors.New("injected fault: the API server is unavailable")
}

// faultyClient wraps c so that CXExperiment status patches (statusFaults),
// HTTPRoute writes (routeFaults) and ResponseTally patches (fenceFaults)
// fail where set, and cached reads of
// CXExperiments lag where set (cacheLag).
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
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if exp, ok := obj.(*cxv1.CXExperiment); ok && cacheLag.read(key, exp) {
				return nil
			}
			return c.Get(ctx, key, obj, opts...)
		},
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
			if _, ok := obj.(*cxv1.ResponseTally); ok && fenceFaults.failing(obj.GetNamespace()) {
				return fenceFaults.refuse()
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
