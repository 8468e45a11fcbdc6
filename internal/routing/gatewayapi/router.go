package gatewayapi

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/routing/traffic"
)

// AnnotationRuleSegments lists, on a child route, the segment of each rule
// in order, so that the applied split can be read back (Weights).
const AnnotationRuleSegments = "cx.rapport.dev/rule-segments"

// AnnotationParentRoute names the parent route on a child route.
const AnnotationParentRoute = "cx.rapport.dev/parent-route"

// Router routes with Gateway API HTTPRoutes (routing.Router). Make one per
// reconcile (routing.New): it keeps the parent route it was given or read.
type Router struct {
	// Client reads (from the cache) and writes routes.
	Client client.Client
	Scheme *runtime.Scheme
	// Parent is the experiment's HTTPRoute as read; nil: read it when needed.
	Parent *gwv1.HTTPRoute
}

func control(exp *cxv1.CXExperiment) (*cxv1.Variant, error) {
	c := exp.Spec.ControlVariant()
	if c == nil || c.Service == nil {
		return nil, traffic.Errorf(cxv1.ReasonInvalidSpec, "spec.variants: the control needs a service with spec.traffic.gatewayAPI")
	}
	return c, nil
}

func routeName(exp *cxv1.CXExperiment) string {
	if exp.Spec.Traffic.GatewayAPI == nil {
		return ""
	}
	return exp.Spec.Traffic.GatewayAPI.HTTPRoute
}

// ReadParent reads the user's HTTPRoute named by the experiment. A missing
// route is a *traffic.Error with reason RouteNotFound that names the fix.
func ReadParent(ctx context.Context, c client.Reader, exp *cxv1.CXExperiment) (*gwv1.HTTPRoute, error) {
	route := &gwv1.HTTPRoute{}
	key := types.NamespacedName{Namespace: exp.Namespace, Name: routeName(exp)}
	if err := c.Get(ctx, key, route); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, traffic.Errorf(cxv1.ReasonRouteNotFound,
				"HTTPRoute %s not found in namespace %s; create it, or recreate the experiment with the right spec.traffic.gatewayAPI.httpRoute (the field is immutable)", key.Name, key.Namespace)
		}
		return nil, fmt.Errorf("get HTTPRoute %s: %w", key, err)
	}
	return route, nil
}

// parent returns the parent route, read at most once per Router.
func (r *Router) parent(ctx context.Context, exp *cxv1.CXExperiment) (*gwv1.HTTPRoute, error) {
	if r.Parent != nil {
		return r.Parent, nil
	}
	p, err := ReadParent(ctx, r.Client, exp)
	if err != nil {
		return nil, err
	}
	r.Parent = p
	return p, nil
}

// Record returns the original rules of the parent route (experiments without
// segments) or the child route's name (with segments).
func (r *Router) Record(ctx context.Context, exp *cxv1.CXExperiment) (cxv1.TrafficStatus, error) {
	ts := *exp.Status.Traffic.DeepCopy()
	if len(exp.Spec.Segments) > 0 {
		ts.ChildRoute = ChildRouteName(exp.Name)
		return ts, nil
	}
	if len(ts.OriginalRules) > 0 {
		return ts, nil
	}
	c, err := control(exp)
	if err != nil {
		return ts, err
	}
	parent, err := r.parent(ctx, exp)
	if err != nil {
		return ts, err
	}
	idx := ControlRules(parent, c.Service.Name)
	if len(idx) == 0 {
		return ts, traffic.Errorf(cxv1.ReasonNoControlRule,
			"HTTPRoute %s has no rule with a backendRef to the control Service %s; point a rule of the route at it (or recreate the experiment with the right control variant)", parent.Name, c.Service.Name)
	}
	for _, i := range idx {
		rule := parent.Spec.Rules[i]
		if len(rule.BackendRefs) != 1 {
			return ts, traffic.Errorf(cxv1.ReasonNoControlRule,
				"rule %d of HTTPRoute %s sends traffic to %d backends; without segments Rapport needs the rule to route only to the control Service %s (or use segments)",
				i, parent.Name, len(rule.BackendRefs), c.Service.Name)
		}
		refs, err := json.Marshal(rule.BackendRefs)
		if err != nil {
			return ts, err
		}
		o := cxv1.OriginalRule{Index: int32(i), BackendRefs: string(refs)}
		if rule.Name != nil {
			o.Name = string(*rule.Name)
		}
		if rule.SessionPersistence != nil {
			sp, err := json.Marshal(rule.SessionPersistence)
			if err != nil {
				return ts, err
			}
			o.SessionPersistence = string(sp)
		}
		ts.OriginalRules = append(ts.OriginalRules, o)
	}
	return ts, nil
}

// Diff returns the write that routes traffic as planned: an apply or a
// delete of the child route (segments), or a patch of the parent's control
// rules (no segments); none when the route already carries the plan.
func (r *Router) Diff(ctx context.Context, exp *cxv1.CXExperiment, plan traffic.Plan) ([]traffic.Change, error) {
	c, err := control(exp)
	if err != nil {
		return nil, err
	}
	parent, err := r.parent(ctx, exp)
	if err != nil {
		return nil, err
	}
	if len(exp.Spec.Segments) > 0 {
		return r.diffChild(ctx, exp, parent, c.Service.Name, plan)
	}
	if len(plan.Segments) != 1 {
		return nil, fmt.Errorf("plan for an experiment without segments has %d segments", len(plan.Segments))
	}
	return r.diffParent(exp, parent, c.Service.Name, plan, plan.Segments[0].AllControl())
}

func (r *Router) diffChild(ctx context.Context, exp *cxv1.CXExperiment, parent *gwv1.HTTPRoute, controlService string, plan traffic.Plan) ([]traffic.Change, error) {
	rules, err := RenderChildRules(parent, controlService, plan)
	if err != nil {
		return nil, err
	}
	name := ChildRouteName(exp.Name)
	existing := &gwv1.HTTPRoute{}
	err = r.Client.Get(ctx, types.NamespacedName{Namespace: exp.Namespace, Name: name}, existing)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("get child HTTPRoute %s: %w", name, err)
	}
	found := err == nil
	if len(rules) == 0 {
		if !found {
			return nil, nil
		}
		return []traffic.Change{deleteRoute{c: r.Client, route: existing}}, nil
	}
	desired := &gwv1.HTTPRoute{
		TypeMeta: metav1.TypeMeta{APIVersion: gwv1.GroupVersion.String(), Kind: "HTTPRoute"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: exp.Namespace,
			Labels:      map[string]string{cxv1.LabelExperiment: exp.Name, cxv1.LabelManagedBy: "rapport"},
			Annotations: map[string]string{AnnotationRuleSegments: ruleSegments(plan, len(ControlRules(parent, controlService))), AnnotationParentRoute: parent.Name},
		},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: parent.Spec.ParentRefs},
			Hostnames:       parent.Spec.Hostnames,
			Rules:           rules,
		},
	}
	if err := controllerutil.SetControllerReference(exp, desired, r.Scheme); err != nil {
		return nil, err
	}
	if found && upToDate(existing, desired) {
		return nil, nil
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(desired)
	if err != nil {
		return nil, err
	}
	delete(u, "status")
	return []traffic.Change{applyRoute{c: r.Client, route: &unstructured.Unstructured{Object: u}, plan: plan}}, nil
}

// applyRoute applies the child route with server-side apply.
type applyRoute struct {
	c     client.Client
	route *unstructured.Unstructured
	plan  traffic.Plan
}

func (a applyRoute) Apply(ctx context.Context) error {
	if err := a.c.Apply(ctx, client.ApplyConfigurationFromUnstructured(a.route), client.FieldOwner(traffic.FieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply child HTTPRoute %s: %w", a.route.GetName(), explainApplyError(err, a.plan))
	}
	return nil
}

// deleteRoute deletes the child route (no segment routes to a variant).
type deleteRoute struct {
	c     client.Client
	route *gwv1.HTTPRoute
}

func (d deleteRoute) Apply(ctx context.Context) error {
	if err := d.c.Delete(ctx, d.route); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete child HTTPRoute %s: %w", d.route.Name, err)
	}
	return nil
}

// upToDate reports whether the existing child route already holds what
// Rapport owns, so that an unchanged split costs no API write.
func upToDate(existing, desired *gwv1.HTTPRoute) bool {
	for k, v := range desired.Labels {
		if existing.Labels[k] != v {
			return false
		}
	}
	for k, v := range desired.Annotations {
		if existing.Annotations[k] != v {
			return false
		}
	}
	if !metav1.IsControlledBy(existing, &metav1.ObjectMeta{UID: desired.OwnerReferences[0].UID}) {
		return false
	}
	return equality.Semantic.DeepEqual(existing.Spec.ParentRefs, desired.Spec.ParentRefs) &&
		equality.Semantic.DeepEqual(existing.Spec.Hostnames, desired.Spec.Hostnames) &&
		equality.Semantic.DeepEqual(existing.Spec.Rules, desired.Spec.Rules)
}

func ruleSegments(plan traffic.Plan, rulesPerSegment int) string {
	var out []string
	for _, s := range plan.Segments {
		if s.Segment == cxv1.AllSegment || s.Match == nil || s.AllControl() {
			continue
		}
		for range rulesPerSegment {
			out = append(out, s.Segment)
		}
	}
	return strings.Join(out, ",")
}

// explainApplyError turns the API server's refusal of sessionPersistence on
// standard-channel CRDs into an actionable message.
func explainApplyError(err error, plan traffic.Plan) error {
	if plan.Stickiness != nil && strings.Contains(err.Error(), "sessionPersistence") {
		return traffic.Errorf(cxv1.ReasonStickinessUnsupported,
			"the cluster's HTTPRoute CRD has no sessionPersistence (it is in the Gateway API experimental channel); install the experimental CRDs or remove spec.traffic.gatewayAPI.stickiness: %v", err)
	}
	return err
}

type jsonPatchOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value,omitempty"`
}

// diffParent returns the patch that sets the backendRefs (and
// sessionPersistence) of the parent's control rules, or restores the
// recorded originals when restore is true.
func (r *Router) diffParent(exp *cxv1.CXExperiment, parent *gwv1.HTTPRoute, controlService string, plan traffic.Plan, restore bool) ([]traffic.Change, error) {
	originals := exp.Status.Traffic.OriginalRules
	if len(originals) == 0 {
		if restore {
			return nil, nil // nothing was ever changed
		}
		return nil, fmt.Errorf("the original rules of HTTPRoute %s are not recorded yet", parent.Name)
	}
	idx := ControlRules(parent, controlService)
	if len(idx) == 0 {
		return nil, traffic.Errorf(cxv1.ReasonNoControlRule,
			"HTTPRoute %s no longer has a rule routing to the control Service %s; restore the rule or delete the experiment", parent.Name, controlService)
	}
	ops := []jsonPatchOp{{Op: "test", Path: "/metadata/resourceVersion", Value: mustJSON(parent.ResourceVersion)}}
	for k, i := range idx {
		rule := parent.Spec.Rules[i]
		orig, ok := matchOriginal(originals, rule, k)
		if !ok {
			return nil, traffic.Errorf(cxv1.ReasonNoControlRule,
				"rule %d of HTTPRoute %s routes to the control but was not recorded when the experiment started; revert the route change", i, parent.Name)
		}
		var wantRefs, wantSP json.RawMessage
		if restore {
			wantRefs = json.RawMessage(orig.BackendRefs)
			if orig.SessionPersistence != "" {
				wantSP = json.RawMessage(orig.SessionPersistence)
			}
		} else {
			var origRule gwv1.HTTPRouteRule
			if err := json.Unmarshal([]byte(orig.BackendRefs), &origRule.BackendRefs); err != nil {
				return nil, fmt.Errorf("decode recorded backendRefs of rule %d: %w", i, err)
			}
			refs, err := RenderBackends(origRule, parent.Namespace, plan.Segments[0], plan.TagRequests, plan.Assignment)
			if err != nil {
				return nil, err
			}
			wantRefs = mustJSON(refs)
			if sp := SessionPersistence(plan.Stickiness); sp != nil {
				wantSP = mustJSON(sp)
			} else if orig.SessionPersistence != "" {
				wantSP = json.RawMessage(orig.SessionPersistence)
			}
		}
		base := fmt.Sprintf("/spec/rules/%d", i)
		if !jsonEqual(mustJSON(rule.BackendRefs), wantRefs) {
			ops = append(ops, jsonPatchOp{Op: "replace", Path: base + "/backendRefs", Value: wantRefs})
		}
		haveSP := rule.SessionPersistence != nil
		switch {
		case wantSP == nil && haveSP:
			ops = append(ops, jsonPatchOp{Op: "remove", Path: base + "/sessionPersistence"})
		case wantSP != nil && !haveSP:
			ops = append(ops, jsonPatchOp{Op: "add", Path: base + "/sessionPersistence", Value: wantSP})
		case wantSP != nil && !jsonEqual(mustJSON(rule.SessionPersistence), wantSP):
			ops = append(ops, jsonPatchOp{Op: "replace", Path: base + "/sessionPersistence", Value: wantSP})
		}
	}
	if len(ops) == 1 {
		return nil, nil
	}
	body, err := json.Marshal(ops)
	if err != nil {
		return nil, err
	}
	return []traffic.Change{patchRules{c: r.Client, route: parent, body: body, plan: plan}}, nil
}

// patchRules patches the parent's control rules with a JSON patch that
// first tests the route's resourceVersion: a route changed since it was
// read is not overwritten (the patch fails and the reconcile runs again).
type patchRules struct {
	c     client.Client
	route *gwv1.HTTPRoute
	body  []byte
	plan  traffic.Plan
}

func (p patchRules) Apply(ctx context.Context) error {
	if err := p.c.Patch(ctx, p.route, client.RawPatch(types.JSONPatchType, p.body), client.FieldOwner(traffic.FieldOwner)); err != nil {
		return fmt.Errorf("patch HTTPRoute %s rules: %w", p.route.Name, explainApplyError(err, p.plan))
	}
	return nil
}

// matchOriginal finds the recorded original of a control rule: by rule
// name when it has one, else by its position among the control rules.
func matchOriginal(originals []cxv1.OriginalRule, rule gwv1.HTTPRouteRule, k int) (cxv1.OriginalRule, bool) {
	if rule.Name != nil {
		for _, o := range originals {
			if o.Name == string(*rule.Name) {
				return o, true
			}
		}
		return cxv1.OriginalRule{}, false
	}
	if k < len(originals) && originals[k].Name == "" {
		return originals[k], true
	}
	return cxv1.OriginalRule{}, false
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal %T: %v", v, err)) // only typed API values are marshalled
	}
	return b
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return equality.Semantic.DeepEqual(x, y)
}

// Weights reads the split currently applied: from the child route (segments)
// or the parent's control rules (no segments). Segments without a child rule
// route everything to the control.
func (r *Router) Weights(ctx context.Context, exp *cxv1.CXExperiment) (map[string]map[string]int32, error) {
	c, err := control(exp)
	if err != nil {
		return nil, err
	}
	byService := map[string]string{}
	for _, v := range exp.Spec.Variants {
		if v.Service != nil {
			byService[v.Service.Name] = v.Name
		}
	}
	out := map[string]map[string]int32{}
	for _, s := range exp.Spec.SegmentNames() {
		out[s] = map[string]int32{c.Name: 100}
	}
	read := func(segment string, refs []gwv1.HTTPBackendRef, ns string) {
		w := map[string]int32{}
		var sum int32
		for _, b := range refs {
			for svc, v := range byService {
				if refersTo(b.BackendObjectReference, ns, svc) {
					weight := int32(1)
					if b.Weight != nil {
						weight = *b.Weight
					}
					w[v] += weight
					sum += weight
				}
			}
		}
		if sum > 0 && sum != 100 { // normalise to percentages
			for v := range w {
				w[v] = w[v] * 100 / sum
			}
		}
		out[segment] = w
	}
	if len(exp.Spec.Segments) == 0 {
		parent, err := r.parent(ctx, exp)
		if err != nil {
			return nil, err
		}
		if idx := ControlRules(parent, c.Service.Name); len(idx) > 0 {
			read(cxv1.AllSegment, parent.Spec.Rules[idx[0]].BackendRefs, parent.Namespace)
		}
		return out, nil
	}
	child := &gwv1.HTTPRoute{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: exp.Namespace, Name: ChildRouteName(exp.Name)}, child); err != nil {
		if apierrors.IsNotFound(err) {
			return out, nil
		}
		return nil, err
	}
	segs := strings.Split(child.Annotations[AnnotationRuleSegments], ",")
	for i, rule := range child.Spec.Rules {
		if i < len(segs) && segs[i] != "" {
			read(segs[i], rule.BackendRefs, child.Namespace)
		}
	}
	return out, nil
}

// Finalize removes the child route (or hands it over to the user when
// keepPromoted), and restores the parent's recorded rules unless keepPromoted.
func (r *Router) Finalize(ctx context.Context, exp *cxv1.CXExperiment, keepPromoted bool) error {
	if len(exp.Spec.Segments) > 0 {
		child := &gwv1.HTTPRoute{}
		err := r.Client.Get(ctx, types.NamespacedName{Namespace: exp.Namespace, Name: ChildRouteName(exp.Name)}, child)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("get child HTTPRoute: %w", err)
		}
		if keepPromoted {
			// The promoted split outlives the experiment: drop the owner
			// reference so garbage collection keeps the route.
			patch := client.MergeFrom(child.DeepCopy())
			child.OwnerReferences = nil
			child.Labels[cxv1.LabelManagedBy] = "rapport-promoted"
			if err := r.Client.Patch(ctx, child, patch); err != nil {
				return fmt.Errorf("release child HTTPRoute %s: %w", child.Name, err)
			}
			return nil
		}
		if err := r.Client.Delete(ctx, child); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete child HTTPRoute %s: %w", child.Name, err)
		}
		return nil
	}
	if keepPromoted || len(exp.Status.Traffic.OriginalRules) == 0 {
		return nil
	}
	c, err := control(exp)
	if err != nil {
		return err
	}
	parent, err := r.parent(ctx, exp)
	if err != nil {
		if traffic.ReasonOf(err, "") == cxv1.ReasonRouteNotFound {
			return nil // nothing left to restore
		}
		return err
	}
	changes, err := r.diffParent(exp, parent, c.Service.Name, traffic.Plan{}, true)
	if err != nil {
		return err
	}
	return traffic.Apply(ctx, changes)
}
