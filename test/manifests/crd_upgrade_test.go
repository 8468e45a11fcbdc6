package manifests

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	"github.com/rapport-dev/rapport/internal/collector"
	"github.com/rapport-dev/rapport/test/utils"
)

// TestCRDUpgradeServerSide checks the CRD upgrade step of
// docs/operations.md: Helm installs crds/ once and never upgrades them, so
// an upgrade applies the new chart's CRDs first with
//
//	kubectl apply --server-side --force-conflicts -f rapport/crds/
//
// The test installs an older CXExperiment CRD the way Helm does (a plain
// create), stores an experiment, then applies every CRD of the chart as that
// command does (server-side apply, field manager "kubectl", forcing
// conflicts with Helm's create): the new schema is served, the stored
// experiment is untouched, a field only the new schema knows is kept (not
// pruned), and applying again changes nothing. An older ResponseTally CRD
// (without spec.recentKeyDigests) is installed the same way: the check the
// manager makes at start (collector.TallySchemaHasDigests) says false
// before the apply and true after.
func TestCRDUpgradeServerSide(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane; skipped with -short")
	}
	ctrllog.SetLogger(logr.Discard()) // envtest logs through controller-runtime; the test reads outcomes
	assets, err := utils.AssetsDir()
	if err != nil {
		missingDependency(t, "no envtest control plane: %v", err)
	}
	cp, err := utils.ControlPlaneOnFreePorts() // not envtest's ports from the ephemeral range
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets, ControlPlaneStopTimeout: time.Minute, ControlPlane: cp}
	cfg, err := env.Start()
	if err != nil {
		missingDependency(t, "envtest did not start: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	k8s, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The chart's CXExperiment CRD, made older: no spec.paused, no Phase column.
	files, err := filepath.Glob(filepath.Join(utils.RepoRoot(), chartDir, "crds", "*.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("chart CRDs: %v %v", files, err)
	}
	crds := map[string]*apiextensionsv1.CustomResourceDefinition{}
	for _, f := range files {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(readRepoFile(t, filepath.Join(chartDir, "crds", filepath.Base(f))), crd); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		crds[crd.Name] = crd
	}
	const name = "cxexperiments.cx.rapport.dev"
	old := crds[name].DeepCopy()
	v := &old.Spec.Versions[0]
	delete(v.Schema.OpenAPIV3Schema.Properties["spec"].Properties, "paused")
	v.AdditionalPrinterColumns = v.AdditionalPrinterColumns[1:]
	if err := k8s.Create(ctx, old); err != nil {
		t.Fatal(err)
	}
	waitEstablished(ctx, t, k8s, name)
	// The ResponseTally CRD from before spec.recentKeyDigests: the manager
	// reads the published schema and keeps keys in the old list.
	const tallies = "responsetallies.cx.rapport.dev"
	oldTally := crds[tallies].DeepCopy()
	delete(oldTally.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties, "recentKeyDigests")
	if err := k8s.Create(ctx, oldTally); err != nil {
		t.Fatal(err)
	}
	waitEstablished(ctx, t, k8s, tallies)
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The published schema follows the CRD a moment after it is established.
	hasDigests := func(want bool) {
		t.Helper()
		errNotYet := errors.New("not published yet")
		err := retryWhile(ctx, func(err error) bool { return err != nil }, func() error {
			ok, err := collector.TallySchemaHasDigests(dc)
			if err == nil && ok != want {
				return errNotYet
			}
			return err
		})
		if err != nil {
			t.Fatalf("TallySchemaHasDigests never said %v: %v", want, err)
		}
	}
	hasDigests(false)

	ns := "crd-upgrade"
	if err := k8s.Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}); err != nil {
		t.Fatal(err)
	}
	exp := sampleExperiment(t, ns, "before-upgrade")
	// Established comes a moment before discovery lists the new kind.
	if err := retryWhile(ctx, meta.IsNoMatchError, func() error { return k8s.Create(ctx, exp) }); err != nil {
		t.Fatalf("the old CRD refuses the experiment: %v", err)
	}

	// The documented step, for every CRD of the chart.
	apply := func() {
		t.Helper()
		for _, crd := range crds {
			u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(crd)
			if err != nil {
				t.Fatal(err)
			}
			obj := &unstructured.Unstructured{Object: u}
			obj.SetAPIVersion("apiextensions.k8s.io/v1")
			obj.SetKind("CustomResourceDefinition")
			unstructured.RemoveNestedField(obj.Object, "status")
			unstructured.RemoveNestedField(obj.Object, "metadata", "creationTimestamp")
			if err := k8s.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner("kubectl"), client.ForceOwnership); err != nil {
				t.Fatalf("server-side apply of %s: %v", crd.Name, err)
			}
		}
	}
	apply()
	for n := range crds {
		waitEstablished(ctx, t, k8s, n)
	}
	hasDigests(true)
	got := &apiextensionsv1.CustomResourceDefinition{}
	if err := k8s.Get(ctx, types.NamespacedName{Name: name}, got); err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["paused"]; !ok {
		t.Error("after the apply, the served schema still lacks spec.paused")
	}
	if len(got.Spec.Versions[0].AdditionalPrinterColumns) != len(crds[name].Spec.Versions[0].AdditionalPrinterColumns) {
		t.Error("after the apply, the printer columns are still the old ones")
	}
	generation := got.Generation

	// The experiment stored before is still there; a field of the new schema is kept.
	stored := &unstructured.Unstructured{}
	stored.SetGroupVersionKind(exp.GroupVersionKind())
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(exp), stored); err != nil {
		t.Fatalf("the experiment stored before the upgrade: %v", err)
	}
	// The CRD was Established before the apply, so waitEstablished does not
	// wait for the API server to serve the new schema: it swaps its handler
	// a moment later. Dry runs show when it does (the field is kept); one
	// that still prunes it after a minute fails below.
	after := sampleExperiment(t, ns, "after-upgrade")
	_ = unstructured.SetNestedField(after.Object, true, "spec", "paused")
	errPruned := errors.New("spec.paused pruned")
	_ = retryWhile(ctx, func(err error) bool { return err == errPruned }, func() error {
		probe := after.DeepCopy()
		if err := k8s.Create(ctx, probe, client.DryRunAll); err != nil {
			return err
		}
		if paused, _, _ := unstructured.NestedBool(probe.Object, "spec", "paused"); !paused {
			return errPruned
		}
		return nil
	})
	if err := k8s.Create(ctx, after); err != nil {
		t.Fatal(err)
	}
	if paused, _, _ := unstructured.NestedBool(after.Object, "spec", "paused"); !paused {
		t.Error("spec.paused was pruned: the new schema is not in effect")
	}

	// Applying the same CRDs again is a no-op.
	apply()
	if err := k8s.Get(ctx, types.NamespacedName{Name: name}, got); err != nil {
		t.Fatal(err)
	}
	if got.Generation != generation {
		t.Errorf("a second apply of the same CRDs changed generation %d to %d", generation, got.Generation)
	}
}

func waitEstablished(ctx context.Context, t *testing.T, k8s client.Client, name string) {
	t.Helper()
	for {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := k8s.Get(ctx, types.NamespacedName{Name: name}, crd); err == nil {
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("CRD %s not established", name)
		case <-time.After(50 * time.Millisecond): // polling the API server for a condition
		}
	}
}

// retryWhile calls f until it returns an error that retry does not accept
// (or nil), for at most a minute: the API server catching up with a CRD.
func retryWhile(ctx context.Context, retry func(error) bool, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		err := f()
		if err == nil || !retry(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond): // polling the API server
		}
	}
}

// sampleExperiment is config/samples' experiment, in namespace ns.
func sampleExperiment(t *testing.T, ns, name string) *unstructured.Unstructured {
	t.Helper()
	var exp *unstructured.Unstructured
	for _, o := range decodeDocs(t, readRepoFile(t, "config/samples/cx_v1alpha1_cxexperiment.yaml")) {
		if o.GetKind() == "CXExperiment" && exp == nil {
			exp = o
		}
	}
	if exp == nil {
		t.Fatal("no CXExperiment in config/samples/cx_v1alpha1_cxexperiment.yaml")
	}
	exp.SetNamespace(ns)
	exp.SetName(name)
	unstructured.RemoveNestedField(exp.Object, "spec", "paused")
	return exp
}
