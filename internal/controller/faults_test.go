package controller

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

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

// client wraps c so that CXExperiment status patches fail where set.
func (f *faults) client(c client.Client) client.Client {
	return interceptor.NewClient(withoutWatch{c}, interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			if _, ok := obj.(*cxv1.CXExperiment); ok && sub == "status" && f.failing(obj.GetNamespace()) {
				f.refused.Add(1)
				return errors.New("injected fault: the API server is unavailable")
			}
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	})
}

// withoutWatch adapts a manager's client to interceptor.NewClient.
type withoutWatch struct{ client.Client }

func (withoutWatch) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	return nil, errors.New("watch is not supported by this client")
}
