package controller

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// TestReadExperiment: the cache serves reads until a status write conflicts;
// then the API server does, until the cache holds the same version.
func TestReadExperiment(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := cxv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	nn := types.NamespacedName{Namespace: "shop", Name: "checkout"}
	build := func(step int32) client.WithWatch {
		exp := &cxv1.CXExperiment{ObjectMeta: metav1.ObjectMeta{Namespace: nn.Namespace, Name: nn.Name}}
		c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(exp).WithStatusSubresource(exp).Build()
		exp.Status.CurrentStep = step
		for range step { // one status write per step: resourceVersions differ with the step
			if err := c.Status().Update(context.Background(), exp); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}
	for _, tt := range []struct {
		name            string
		cacheStep       int32 // the cache's copy; the API server is at step 3
		behind          bool
		wantStep        int32
		wantStillBehind bool
	}{
		{"not behind: the cache", 1, false, 1, false},
		{"behind and still lagging: the API server", 1, true, 3, true},
		{"behind, caught up: the API server, then the cache", 3, true, 3, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &CXExperimentReconciler{Client: build(tt.cacheStep), APIReader: build(3)}
			if tt.behind {
				r.behind.Store(nn, struct{}{})
			}
			exp := &cxv1.CXExperiment{}
			if err := r.readExperiment(context.Background(), nn, exp); err != nil {
				t.Fatal(err)
			}
			if exp.Status.CurrentStep != tt.wantStep {
				t.Errorf("read step %d, want %d", exp.Status.CurrentStep, tt.wantStep)
			}
			if _, still := r.behind.Load(nn); still != tt.wantStillBehind {
				t.Errorf("still behind = %v, want %v", still, tt.wantStillBehind)
			}
		})
	}
}
