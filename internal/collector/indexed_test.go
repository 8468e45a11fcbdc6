package collector

import (
	"context"
	"errors"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// fakeInformers hands out one informer, or an error; it counts the calls.
type fakeInformers struct {
	informer cache.Informer
	err      error
	calls    int
}

func (f *fakeInformers) GetInformer(context.Context, client.Object, ...cache.InformerGetOption) (cache.Informer, error) {
	f.calls++
	return f.informer, f.err
}

// indexedInformer is an informer with an indexer, as client-go's are.
type indexedInformer struct {
	cache.Informer
	ix toolscache.Indexer
}

func (i indexedInformer) GetIndexer() toolscache.Indexer { return i.ix }

// plainInformer has no indexer, as a cache over several namespaces gives.
type plainInformer struct{ cache.Informer }

func feedbackSource(name, secret string) *cxv1.FeedbackSource {
	return &cxv1.FeedbackSource{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
		Spec:       cxv1.FeedbackSourceSpec{SecretRef: cxv1.LocalObjectRef{Name: secret}},
	}
}

// TestIndexedReads: the indexer answers when the informer has one (the
// very object it holds, and NotFound); otherwise the client does, and an
// informer that could not be had is asked for again at the next read.
func TestIndexedReads(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := cxv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	// The client and the indexer hold different Secrets, so each answer
	// shows where it came from.
	cl := fake.NewClientBuilder().WithScheme(scheme).WithObjects(feedbackSource("typeform", "from-client")).Build()
	ix := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, toolscache.Indexers{})
	held := feedbackSource("typeform", "from-indexer")
	if err := ix.Add(held); err != nil {
		t.Fatal(err)
	}
	nn := types.NamespacedName{Namespace: "shop", Name: "typeform"}
	missing := types.NamespacedName{Namespace: "shop", Name: "gone"}
	resource := cxv1.GroupVersion.WithResource("feedbacksources").GroupResource()
	ctx := context.Background()

	tests := []struct {
		name       string
		informers  *fakeInformers
		want       string
		wantShared bool // the indexer's own object
		calls      int  // GetInformer calls after four reads
	}{
		{"indexer", &fakeInformers{informer: indexedInformer{ix: ix}}, "from-indexer", true, 1},
		{"no informers", nil, "from-client", false, 0},
		{"informer without an indexer", &fakeInformers{informer: plainInformer{}}, "from-client", false, 1},
		{"informer unavailable", &fakeInformers{err: errors.New("no kind")}, "from-client", false, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &indexed[cxv1.FeedbackSource, *cxv1.FeedbackSource]{client: cl, resource: resource}
			if tt.informers != nil {
				r.informers = tt.informers
			}
			for range 2 {
				got, err := r.get(ctx, nn)
				if err != nil {
					t.Fatal(err)
				}
				if got.Spec.SecretRef.Name != tt.want || (got == held) != tt.wantShared {
					t.Fatalf("got Secret %q (the indexer's object: %v), want %q (%v)", got.Spec.SecretRef.Name, got == held, tt.want, tt.wantShared)
				}
				if _, err := r.get(ctx, missing); !apierrors.IsNotFound(err) {
					t.Fatalf("a missing source: %v, want NotFound", err)
				}
			}
			if tt.informers != nil && tt.informers.calls != tt.calls {
				t.Fatalf("GetInformer called %d times, want %d", tt.informers.calls, tt.calls)
			}
		})
	}
}
