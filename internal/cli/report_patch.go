package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// httpRouteGVK is the Gateway API HTTPRoute, read as unstructured so that
// kubectl-cx needs no Gateway API types.
var httpRouteGVK = schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRoute"}

// maxRouteRules is Gateway API's limit of rules per HTTPRoute.
const maxRouteRules = 16

// PromotionPatch returns the JSON merge patch that makes the user's
// HTTPRoute hold the promoted split of a Succeeded experiment, for Git.
// parent is the user's route as it is in the cluster, child Rapport's child
// route (nil without segments). The patch sets spec.rules whole (an atomic
// list): without segments, the parent's rules as Rapport left them; with
// segments, the parent's rules followed by the child's rules of the segments
// that were promoted to a variant. Backends Rapport left at weight 0 are
// dropped from the rules Rapport wrote.
func PromotionPatch(exp *cxv1.CXExperiment, parent, child map[string]any) (map[string]any, error) {
	if exp.Spec.Traffic.GatewayAPI == nil {
		return nil, refusedErrorf("--patch prints a change to an HTTPRoute: %s routes with Deployment replicas (spec.traffic.replicas), which Rapport restores itself", ref(exp))
	}
	if p := phase(exp); p != cxv1.PhaseSucceeded {
		return nil, refusedErrorf("--patch prints the promoted split of a Succeeded experiment; %s is %s", ref(exp), p)
	}
	route := exp.Spec.Traffic.GatewayAPI.HTTPRoute
	rules, _, err := unstructured.NestedSlice(parent, "spec", "rules")
	if err != nil {
		return nil, fmt.Errorf("read spec.rules of HTTPRoute %s: %w", route, err)
	}
	control := controlService(exp)
	if len(exp.Spec.Segments) == 0 {
		for _, r := range exp.Status.Traffic.OriginalRules {
			if i := int(r.Index); i < len(rules) {
				rules[i] = dropZeroWeights(rules[i])
			}
		}
		return map[string]any{"spec": map[string]any{"rules": rules}}, nil
	}
	if child == nil {
		return nil, refusedErrorf("the child route of %s is gone, and with it the promoted split", ref(exp))
	}
	childRules, _, err := unstructured.NestedSlice(child, "spec", "rules")
	if err != nil {
		return nil, fmt.Errorf("read spec.rules of the child route: %w", err)
	}
	for _, r := range childRules {
		r = dropZeroWeights(r)
		if onlyTo(r, control) {
			continue // a segment that keeps the control: the parent's rule serves it
		}
		rules = append(rules, r)
	}
	if len(rules) > maxRouteRules {
		return nil, refusedErrorf("HTTPRoute %s would have %d rules with the promoted split, more than the %d Gateway API allows; "+
			"commit the child route as an HTTPRoute of its own instead (kubectl get httproute %s -n %s -o yaml)",
			route, len(rules), maxRouteRules, childName(exp), exp.Namespace)
	}
	return map[string]any{"spec": map[string]any{"rules": rules}}, nil
}

func controlService(exp *cxv1.CXExperiment) string {
	for _, v := range exp.Spec.Variants {
		if v.Control && v.Service != nil {
			return v.Service.Name
		}
	}
	return ""
}

func childName(exp *cxv1.CXExperiment) string {
	if exp.Status.Traffic.ChildRoute != "" {
		return exp.Status.Traffic.ChildRoute
	}
	return exp.Name + "-rapport"
}

// backendWeight is a backendRef's weight (1 when unset, as Gateway API defaults it).
func backendWeight(b map[string]any) int64 {
	if w, ok, _ := unstructured.NestedInt64(b, "weight"); ok {
		return w
	}
	if w, ok, _ := unstructured.NestedFloat64(b, "weight"); ok {
		return int64(w)
	}
	return 1
}

// dropZeroWeights removes the backendRefs of weight 0 from a rule, unless
// none would be left.
func dropZeroWeights(rule any) any {
	r, ok := rule.(map[string]any)
	if !ok {
		return rule
	}
	refs, _, _ := unstructured.NestedSlice(r, "backendRefs")
	var kept []any
	for _, b := range refs {
		if m, ok := b.(map[string]any); ok && backendWeight(m) == 0 {
			continue
		}
		kept = append(kept, b)
	}
	if len(kept) == 0 || len(kept) == len(refs) {
		return r
	}
	r = deepCopyMap(r)
	r["backendRefs"] = kept
	return r
}

func deepCopyMap(m map[string]any) map[string]any {
	return (&unstructured.Unstructured{Object: m}).DeepCopy().Object
}

// onlyTo reports whether every backendRef of a rule with a weight is service.
func onlyTo(rule any, service string) bool {
	r, ok := rule.(map[string]any)
	if !ok {
		return false
	}
	refs, _, _ := unstructured.NestedSlice(r, "backendRefs")
	for _, b := range refs {
		m, ok := b.(map[string]any)
		if !ok {
			return false
		}
		if name, _, _ := unstructured.NestedString(m, "name"); name != service && backendWeight(m) > 0 {
			return false
		}
	}
	return len(refs) > 0
}

// getRoute reads an HTTPRoute; nil when it does not exist.
func getRoute(ctx context.Context, c client.Client, ns, name string) (map[string]any, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(httpRouteGVK)
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, u); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get HTTPRoute %s/%s: %w", ns, name, err)
	}
	return u.Object, nil
}

// writePromotionPatch reads the routes of a Succeeded experiment and prints
// the patch for its HTTPRoute in Git, as YAML with a header, or as JSON.
func writePromotionPatch(ctx context.Context, w io.Writer, c client.Client, exp *cxv1.CXExperiment, asJSON bool) error {
	var parent, child map[string]any
	if gw := exp.Spec.Traffic.GatewayAPI; gw != nil && phase(exp) == cxv1.PhaseSucceeded {
		var err error
		if parent, err = getRoute(ctx, c, exp.Namespace, gw.HTTPRoute); err != nil {
			return err
		}
		if parent == nil {
			return notFoundErrorf("HTTPRoute %s/%s of %s not found", exp.Namespace, gw.HTTPRoute, ref(exp))
		}
		if len(exp.Spec.Segments) > 0 {
			if child, err = getRoute(ctx, c, exp.Namespace, childName(exp)); err != nil {
				return err
			}
		}
	}
	patch, err := PromotionPatch(exp, parent, child)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSONDocument(w, patch)
	}
	body, err := yaml.Marshal(patch)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# The promoted split of CXExperiment %s (run %d), for HTTPRoute %s/%s in Git.\n",
		ref(exp), exp.Status.Run, exp.Namespace, exp.Spec.Traffic.GatewayAPI.HTTPRoute)
	fmt.Fprintf(&b, "# A JSON merge patch: spec.rules replaces the route's rules as a whole. Commit it to the\n")
	fmt.Fprintf(&b, "# route's manifest, sync, then delete the experiment. Check it first with:\n")
	fmt.Fprintf(&b, "#   kubectl patch httproute %s -n %s --type merge --patch-file PATCH.yaml --dry-run=server -o yaml\n",
		exp.Spec.Traffic.GatewayAPI.HTTPRoute, exp.Namespace)
	b.Write(body)
	_, err = w.Write(b.Bytes())
	return err
}
