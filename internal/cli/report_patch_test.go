package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// The user's route: /checkout to the control, /static elsewhere.
const parentRouteYAML = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: checkout
spec:
  parentRefs: [{name: public-gateway}]
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /checkout}}]
    backendRefs: [{name: checkout-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /static}}]
    backendRefs: [{name: static, port: 80}]
`

// The child route of the succeeded fixture as Rapport leaves it: one rule
// per segment, enterprise promoted to one-page, new-customers on the control.
const childRouteYAML = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: checkout-redesign-rapport
  labels: {cx.rapport.dev/experiment: checkout-redesign, app.kubernetes.io/managed-by: rapport}
spec:
  parentRefs: [{name: public-gateway}]
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /checkout}, headers: [{name: x-customer-tier, value: enterprise}]}]
    backendRefs:
    - {name: checkout-v1, port: 8080, weight: 0}
    - {name: checkout-v2, port: 8080, weight: 100}
    - {name: checkout-v3, port: 8080, weight: 0}
  - matches: [{path: {type: PathPrefix, value: /checkout}, headers: [{name: Cookie, type: RegularExpression, value: "(^|; )lifecycle=new(;|$)"}]}]
    backendRefs:
    - {name: checkout-v1, port: 8080, weight: 100}
    - {name: checkout-v2, port: 8080, weight: 0}
    - {name: checkout-v3, port: 8080, weight: 0}
`

func createRoute(t *testing.T, ns, manifest string, edit func(map[string]any)) {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &u.Object); err != nil {
		t.Fatal(err)
	}
	u.SetNamespace(ns)
	if edit != nil {
		edit(u.Object)
	}
	if err := k8s.Create(context.Background(), u); err != nil {
		t.Fatal(err)
	}
}

// applies checks that the API server accepts the patch on the user's route.
func applies(t *testing.T, ns string, patchJSON []byte) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(httpRouteGVK)
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "checkout"}, u); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Patch(context.Background(), u, client.RawPatch(types.MergePatchType, patchJSON), client.DryRunAll); err != nil {
		t.Fatalf("the API server refuses the patch: %v", err)
	}
}

func TestClusterReportPatchSegments(t *testing.T) {
	cluster(t)
	ns := newNamespace(t, "shop")
	createRoute(t, ns, parentRouteYAML, nil)
	createRoute(t, ns, childRouteYAML, nil)
	createExperiment(t, ns, "checkout-redesign", succeededStatus())

	r := kubectlCX(t, "report", "checkout-redesign", "-n", ns, "--patch").expect(t, ExitOK)
	golden(t, "report-patch-segments.yaml", []byte(strings.ReplaceAll(r.out, ns, "shop")))

	r = kubectlCX(t, "report", "checkout-redesign", "-n", ns, "--patch", "-o", "json").expect(t, ExitOK)
	var patch struct {
		Spec struct {
			Rules []map[string]any `json:"rules"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(r.out), &patch); err != nil {
		t.Fatal(err)
	}
	// The parent's two rules and enterprise's, to one-page only; new-customers keeps the parent's rule.
	if len(patch.Spec.Rules) != 3 {
		t.Fatalf("want 3 rules, got %d:\n%s", len(patch.Spec.Rules), r.out)
	}
	applies(t, ns, []byte(r.out))
}

func TestClusterReportPatchParentRules(t *testing.T) {
	cluster(t)
	ns := newNamespace(t, "shop")
	// Without segments Rapport edited the control rule in place.
	createRoute(t, ns, parentRouteYAML, func(o map[string]any) {
		rules := o["spec"].(map[string]any)["rules"].([]any)
		rules[0].(map[string]any)["backendRefs"] = []any{
			map[string]any{"name": "checkout-v1", "port": int64(8080), "weight": int64(0)},
			map[string]any{"name": "checkout-v2", "port": int64(8080), "weight": int64(100)},
		}
	})
	ctx := context.Background()
	exp := newExperiment(ns, "checkout-redesign")
	exp.UID, exp.CreationTimestamp = "", metav1.Time{}
	exp.Spec.Segments = nil
	exp.Spec.Variants = exp.Spec.Variants[:2]
	if err := k8s.Create(ctx, exp); err != nil {
		t.Fatal(err)
	}
	exp.Status = cxv1.CXExperimentStatus{Phase: cxv1.PhaseSucceeded, Run: 1, CurrentStep: 3,
		Traffic: cxv1.TrafficStatus{OriginalRules: []cxv1.OriginalRule{{Index: 0, BackendRefs: `[{"name":"checkout-v1","port":8080}]`}}}}
	if err := k8s.Status().Update(ctx, exp); err != nil {
		t.Fatal(err)
	}

	r := kubectlCX(t, "report", "checkout-redesign", "-n", ns, "--patch").expect(t, ExitOK)
	golden(t, "report-patch-parent-rules.yaml", []byte(strings.ReplaceAll(r.out, ns, "shop")))
	r = kubectlCX(t, "report", "checkout-redesign", "-n", ns, "--patch", "-o", "json").expect(t, ExitOK)
	applies(t, ns, []byte(r.out))
}

func TestClusterReportPatchRefused(t *testing.T) {
	cluster(t)
	ns := newNamespace(t, "shop")
	createRoute(t, ns, parentRouteYAML, nil)
	createExperiment(t, ns, "checkout-redesign", progressingStatus())
	r := kubectlCX(t, "report", "checkout-redesign", "-n", ns, "--patch").expect(t, ExitError)
	if !strings.Contains(r.err, "of a Succeeded experiment; "+ns+"/checkout-redesign is Progressing") {
		t.Errorf("stderr: %s", r.err)
	}

	setStatus(t, ns, func(st *cxv1.CXExperimentStatus) { *st = succeededStatus() })
	r = kubectlCX(t, "report", "checkout-redesign", "-n", ns, "--patch").expect(t, ExitError)
	if !strings.Contains(r.err, "the child route of "+ns+"/checkout-redesign is gone") {
		t.Errorf("stderr: %s", r.err)
	}
	kubectlCX(t, "report", "checkout-redesign", "-n", ns, "--patch", "-o", "wide").expect(t, ExitUsage)
}
