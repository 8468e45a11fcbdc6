package collector

import (
	"context"
	"sync/atomic"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Informers gives the informers behind Options.Client's cache: a
// manager's cache (manager.GetCache()) is one.
type Informers interface {
	GetInformer(ctx context.Context, obj client.Object, opts ...cache.InformerGetOption) (cache.Informer, error)
}

// indexed reads one kind of object straight from the indexer of its
// informer: the object that the cached client.Get with
// UnsafeDisableDeepCopy returns, without that call's work on every request
// (it finds the object's kind by reflection, twice, and copies the object
// into the caller's): the collector reads a FeedbackSource and an
// experiment for every answer. The objects are the cache's own: read-only.
//
// Without Options.Informers, or when the informer has no indexer (a cache
// over several namespaces), reads go through the client.
type indexed[T any, P interface {
	*T
	client.Object
}] struct {
	informers Informers
	client    client.Reader
	resource  schema.GroupResource // named by NotFound errors
	state     atomic.Pointer[indexState]
}

// indexState is what indexed found out about its informer: ix nil means
// that it has no indexer, and reads go through the client.
type indexState struct {
	ix toolscache.Indexer
}

// get returns the object, or an error that apierrors.IsNotFound
// recognises when there is none.
func (r *indexed[T, P]) get(ctx context.Context, nn types.NamespacedName) (P, error) {
	if ix := r.indexer(ctx); ix != nil {
		obj, exists, err := ix.GetByKey(nn.Namespace + "/" + nn.Name)
		if err == nil && !exists {
			return nil, apierrors.NewNotFound(r.resource, nn.Name)
		}
		if p, ok := obj.(P); ok && err == nil {
			return p, nil
		}
	}
	p := P(new(T))
	if err := r.client.Get(ctx, nn, p, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	return p, nil
}

// indexer is the informer's indexer, or nil to read through the client.
// Its first call starts the informer if need be and waits for it to sync,
// as the cached client's first read would.
func (r *indexed[T, P]) indexer(ctx context.Context) toolscache.Indexer {
	if s := r.state.Load(); s != nil {
		return s.ix
	}
	if r.informers == nil {
		r.state.Store(&indexState{})
		return nil
	}
	inf, err := r.informers.GetInformer(ctx, P(new(T)))
	if err != nil {
		return nil // the client answers this read; the next one tries again
	}
	s := &indexState{}
	if withIndexer, ok := inf.(interface{ GetIndexer() toolscache.Indexer }); ok {
		s.ix = withIndexer.GetIndexer()
	}
	r.state.Store(s)
	return s.ix
}
