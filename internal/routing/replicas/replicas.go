package replicas

import (
	"context"
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/routing/traffic"
)

// Split shares total pods between backends by weight (percent): at least
// one pod for each backend with a positive weight, the rest by largest
// remainder. The result has one count per backend and sums to total when
// total >= the number of positive weights.
func Split(total int32, weights []int32) []int32 {
	out := make([]int32, len(weights))
	var sumW int32
	for _, w := range weights {
		if w > 0 {
			sumW += w
		}
	}
	if sumW == 0 || total <= 0 {
		return out
	}
	type rem struct {
		i    int
		frac int64
	}
	var rems []rem
	var used int32
	for i, w := range weights {
		if w <= 0 {
			continue
		}
		exact := int64(total) * int64(w) // in units of 1/sumW pods
		n := int32(exact / int64(sumW))
		rems = append(rems, rem{i, exact % int64(sumW)})
		if n < 1 {
			n = 1
		}
		out[i] = n
		used += n
	}
	sort.SliceStable(rems, func(a, b int) bool { return rems[a].frac > rems[b].frac })
	for k := 0; used < total; k = (k + 1) % len(rems) {
		out[rems[k].i]++
		used++
	}
	// Minimum-one bumps can overshoot: take pods back from the largest counts.
	for used > total {
		largest := -1
		for i, n := range out {
			if n > 1 && (largest < 0 || n > out[largest]) {
				largest = i
			}
		}
		if largest < 0 {
			break
		}
		out[largest]--
		used--
	}
	return out
}

// Router routes by scaling Deployments (routing.Router).
type Router struct {
	Client client.Client
}

func (r *Router) scale(ctx context.Context, ns, name string) (*autoscalingv1.Scale, error) {
	dep := &appsv1.Deployment{}
	dep.Namespace, dep.Name = ns, name
	sc := &autoscalingv1.Scale{}
	if err := r.Client.SubResource("scale").Get(ctx, dep, sc); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, traffic.Errorf(cxv1.ReasonDeploymentNotFound,
				"Deployment %s not found in namespace %s; create it, or recreate the experiment with the right spec.variants[].deployment (the field is immutable)", name, ns)
		}
		return nil, fmt.Errorf("get scale of Deployment %s: %w", name, err)
	}
	return sc, nil
}

// scaleTo sets a Deployment's replicas through its scale subresource.
type scaleTo struct {
	c        client.Client
	ns, name string
	replicas int32
}

func (s scaleTo) Apply(ctx context.Context) error {
	dep := &appsv1.Deployment{}
	dep.Namespace, dep.Name = s.ns, s.name
	patch := client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, s.replicas))
	if err := s.c.SubResource("scale").Patch(ctx, dep, patch, client.FieldOwner(traffic.FieldOwner)); err != nil {
		return fmt.Errorf("scale Deployment %s to %d: %w", s.name, s.replicas, err)
	}
	return nil
}

// Record returns the Deployments' replica counts before the experiment.
func (r *Router) Record(ctx context.Context, exp *cxv1.CXExperiment) (cxv1.TrafficStatus, error) {
	ts := *exp.Status.Traffic.DeepCopy()
	if len(ts.OriginalReplicas) > 0 {
		return ts, nil
	}
	for _, v := range exp.Spec.Variants {
		sc, err := r.scale(ctx, exp.Namespace, v.Deployment)
		if err != nil {
			return ts, err
		}
		ts.OriginalReplicas = append(ts.OriginalReplicas, cxv1.OriginalReplicas{Deployment: v.Deployment, Replicas: sc.Spec.Replicas})
	}
	return ts, nil
}

// Diff returns the scales that give the variants' Deployments the plan's
// split: scale-ups before scale-downs, so capacity never dips during a shift.
func (r *Router) Diff(ctx context.Context, exp *cxv1.CXExperiment, plan traffic.Plan) ([]traffic.Change, error) {
	if len(plan.Segments) != 1 {
		return nil, fmt.Errorf("replica routing has no segments, got a plan with %d", len(plan.Segments))
	}
	seg := plan.Segments[0]
	weights := make([]int32, len(seg.Backends))
	for i, b := range seg.Backends {
		weights[i] = b.Weight
	}
	counts := Split(exp.Spec.Traffic.Replicas.Total, weights)
	order := make([]int, len(counts))
	for i := range order {
		order[i] = i
	}
	cur := make([]int32, len(counts))
	for i, b := range seg.Backends {
		sc, err := r.scale(ctx, exp.Namespace, b.Deployment)
		if err != nil {
			return nil, err
		}
		cur[i] = sc.Spec.Replicas
	}
	sort.SliceStable(order, func(a, b int) bool { return counts[order[a]]-cur[order[a]] > counts[order[b]]-cur[order[b]] })
	var changes []traffic.Change
	for _, i := range order {
		if counts[i] != cur[i] {
			changes = append(changes, scaleTo{c: r.Client, ns: exp.Namespace, name: seg.Backends[i].Deployment, replicas: counts[i]})
		}
	}
	return changes, nil
}

// Weights reads the split from the Deployments' replica counts.
func (r *Router) Weights(ctx context.Context, exp *cxv1.CXExperiment) (map[string]map[string]int32, error) {
	w := map[string]int32{}
	var sum int32
	for _, v := range exp.Spec.Variants {
		sc, err := r.scale(ctx, exp.Namespace, v.Deployment)
		if err != nil {
			return nil, err
		}
		w[v.Name] = sc.Spec.Replicas
		sum += sc.Spec.Replicas
	}
	if sum > 0 {
		for k := range w {
			w[k] = w[k] * 100 / sum
		}
	}
	return map[string]map[string]int32{cxv1.AllSegment: w}, nil
}

// Finalize restores the recorded replica counts, unless keepPromoted.
func (r *Router) Finalize(ctx context.Context, exp *cxv1.CXExperiment, keepPromoted bool) error {
	if keepPromoted {
		return nil
	}
	for _, o := range exp.Status.Traffic.OriginalReplicas {
		sc, err := r.scale(ctx, exp.Namespace, o.Deployment)
		if traffic.ReasonOf(err, "") == cxv1.ReasonDeploymentNotFound {
			continue
		}
		if err != nil {
			return err
		}
		if sc.Spec.Replicas == o.Replicas {
			continue
		}
		if err := (scaleTo{c: r.Client, ns: exp.Namespace, name: o.Deployment, replicas: o.Replicas}).Apply(ctx); err != nil {
			return err
		}
	}
	return nil
}
