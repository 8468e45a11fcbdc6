//go:build bench

package cluster

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	toolswatch "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/routing/gatewayapi"
	"github.com/rapport-dev/rapport/internal/sim"
)

// TestRollbackLatency measures, for CSAT drops of 8 and 5 points, the time
// from the decisive response to the route change and the responses needed.
// Each trial: one experiment on one segment at a 50% step that never ends
// on time (minDuration 1h), customers answering at 2,000 per second (control
// 85, variant 85 - drop) in batches of 20, until Rapport rolls the variant
// back. Two clocks:
//   - controller: status.rollbacks[].trafficRestoredAt - decisiveResponseAt
//     (the collector's commit of the newest counted response -> the route
//     write returned), as rapport_rollback_latency_seconds observes it;
//   - end to end: the decisive commit -> a separate watcher (like a gateway)
//     sees the child route change. (The route often changes before the
//     client has even read its 202.)
func TestRollbackLatency(t *testing.T) {
	e := newEnv(t)
	trials := envInt("BENCH_TRIALS", 20)
	type result struct {
		Drop                              int
		Trials                            int
		ControllerMedianS, ControllerP99S float64
		EndToEndMedianS, EndToEndP99S     float64
		ResponsesMedian, ResponsesP90     float64
		RolledBack                        int
	}
	var results []result
	for _, drop := range []int{8, 5} {
		var ctrlLat, e2eLat, responses []float64
		rolled := 0
		for i := range trials {
			c, e2e, n, ok := latencyTrial(t, e, drop, uint64(1000*drop+i))
			if !ok {
				continue
			}
			rolled++
			ctrlLat, e2eLat, responses = append(ctrlLat, c), append(e2eLat, e2e), append(responses, float64(n))
			t.Logf("drop %d trial %d: controller %.3fs, end to end %.3fs, %d responses of the variant", drop, i, c, e2e, n)
		}
		results = append(results, result{
			Drop: drop, Trials: trials, RolledBack: rolled,
			ControllerMedianS: quantile(ctrlLat, 0.5), ControllerP99S: quantile(ctrlLat, 0.99),
			EndToEndMedianS: quantile(e2eLat, 0.5), EndToEndP99S: quantile(e2eLat, 0.99),
			ResponsesMedian: quantile(responses, 0.5), ResponsesP90: quantile(responses, 0.9),
		})
	}
	report(t, "rollback-latency", results)
}

func latencyTrial(t *testing.T, e *env, drop int, seed uint64) (controller, endToEnd float64, responses int64, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ns, token := e.shop(ctx, t)
	e.route(ctx, t, ns, "checkout")
	exp := experiment(ns, "checkout-redesign", "checkout", []cxv1.Step{{Weight: 50, MinDuration: metav1.Duration{Duration: time.Hour}}}, "3")
	must(t, e.c.Create(ctx, exp))
	child := gatewayapi.ChildRouteName(exp.Name)
	key := types.NamespacedName{Namespace: ns, Name: exp.Name}
	// The experiment has started when its child route exists.
	must(t, wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		return e.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: child}, &gwv1.HTTPRoute{}) == nil, nil
	}))

	// A watcher, like a gateway, notes when the child route goes away.
	var changedAt time.Time
	changed := make(chan struct{})
	wc, err := client.NewWithWatch(e.cp.Config, client.Options{Scheme: e.c.Scheme()})
	must(t, err)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, _ metav1.ListOptions) (runtime.Object, error) {
			l := &gwv1.HTTPRouteList{}
			err := wc.List(ctx, l, client.InNamespace(ns))
			return l, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return wc.Watch(ctx, &gwv1.HTTPRouteList{}, client.InNamespace(ns), &client.ListOptions{Raw: &o})
		},
	}
	go func() {
		_, _ = toolswatch.UntilWithSync(ctx, lw, &gwv1.HTTPRoute{}, nil, func(ev watch.Event) (bool, error) {
			if ev.Type == watch.Deleted {
				if r, ok := ev.Object.(*gwv1.HTTPRoute); ok && r.Name == child {
					changedAt = time.Now()
					close(changed)
					return true, nil
				}
			}
			return false, nil
		})
	}()

	scenario := &sim.Scenario{Rate: 2000, Batch: 20, Seed: seed, Segments: map[string]sim.SegmentScenario{
		"enterprise": {Share: 1, Variants: map[string]sim.Distribution{
			"control":  {Satisfied: ptr(85.0)},
			"one-page": {Satisfied: ptr(85.0 - float64(drop))},
		}},
	}}
	var mu sync.Mutex
	var acks []time.Time // acknowledgement times, for diagnostics
	simCtx, stopSim := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = sim.Run(simCtx, sim.Options{Client: e.c, Namespace: ns, Experiment: exp.Name, CollectorURL: e.mgr.CollectorURL,
			Token: token, Scenario: scenario, Concurrency: 2, WeightsEvery: time.Hour, // the split is fixed at 50/50 until the rollback
			OnBatch: func(r sim.BatchResult) {
				if r.Code == http.StatusAccepted {
					mu.Lock()
					acks = append(acks, r.AckedAt)
					mu.Unlock()
				}
			}})
	}()
	select {
	case <-changed:
	case <-ctx.Done():
		stopSim()
		<-done
		x := &cxv1.CXExperiment{}
		_ = e.c.Get(context.Background(), key, x)
		var verdicts []string
		for _, s := range x.Status.Segments {
			for _, v := range s.Variants {
				verdicts = append(verdicts, fmt.Sprintf("%s n=%d %s %s", v.Name, v.Responses, v.Verdict, v.Message))
			}
		}
		t.Logf("drop %d seed %d: no rollback within the time limit (%d batches acknowledged): %v", drop, seed, len(acks), verdicts)
		return 0, 0, 0, false
	}
	stopSim()
	<-done
	final := &cxv1.CXExperiment{}
	// The status is patched right after the route.
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := e.c.Get(ctx, key, final); err != nil {
			return false, err
		}
		return len(final.Status.Rollbacks) > 0 && final.Status.Rollbacks[0].TrafficRestoredAt != nil, nil
	}); err != nil {
		t.Logf("drop %d seed %d: the route changed but status never recorded the rollback: %v", drop, seed, err)
		return 0, 0, 0, false
	}
	rb := &final.Status.Rollbacks[0]
	if rb.DecisiveResponseAt == nil {
		t.Logf("drop %d seed %d: the rollback has no decisiveResponseAt", drop, seed)
		return 0, 0, 0, false
	}
	controller = rb.TrafficRestoredAt.Sub(rb.DecisiveResponseAt.Time).Seconds()
	return controller, changedAt.Sub(rb.DecisiveResponseAt.Time).Seconds(), rb.Responses, true
}
