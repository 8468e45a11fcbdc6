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
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/sim"
	"github.com/rapport-dev/rapport/test/utils"
)

// throughputResult is one run of TestCollectorThroughput.
type throughputResult struct {
	Experiments, Run, BatchSize, InFlight int
	DurationS                             float64
	AcceptedPerSecond                     float64
	AckP50Ms, AckP99Ms                    float64
	Rejected                              int64
	CommitsPerSecond                      float64
	ManagerCPUCoresUsed, ManagerRSSMiB    float64
}

// TestCollectorThroughput posts batches of 100 responses as fast as the
// collector acknowledges them (each 202 is a durable commit) to 1 and to 10
// experiments, for 20 s each, with 32 requests in flight from the same
// 2-core machine, BENCH_RUNS times (default 3) each. It reports accepted
// responses per second, acknowledgement latency (p50, p99), the commits
// made, and the manager's CPU and memory, per run and as the median of the
// runs.
func TestCollectorThroughput(t *testing.T) {
	e := newEnv(t)
	runs := envInt("BENCH_RUNS", 3)
	var results []throughputResult
	for _, experiments := range []int{1, 10} {
		var accepted, p99 []float64
		for run := range runs {
			r := throughputRun(t, e, experiments)
			r.Run = run + 1
			results = append(results, r)
			accepted = append(accepted, r.AcceptedPerSecond)
			p99 = append(p99, r.AckP99Ms)
			t.Logf("%d experiment(s), run %d: %.0f responses/s, ack p50 %.1f ms, p99 %.1f ms, %d rejected",
				experiments, r.Run, r.AcceptedPerSecond, r.AckP50Ms, r.AckP99Ms, r.Rejected)
		}
		t.Logf("%d experiment(s), median of %d runs: %.0f responses/s (min %.0f, max %.0f), ack p99 %.1f ms",
			experiments, runs, quantile(accepted, 0.5), quantile(accepted, 0), quantile(accepted, 1), quantile(p99, 0.5))
	}
	report(t, "collector-throughput", results)
}

func throughputRun(t *testing.T, e *env, experiments int) throughputResult {
	ctx := context.Background()
	ns, token := e.shop(ctx, t)
	var names []string
	for i := range experiments {
		name := fmt.Sprintf("exp-%d", i)
		e.route(ctx, t, ns, name)
		must(t, e.c.Create(ctx, experiment(ns, name, name, []cxv1.Step{{Weight: 50, MinDuration: metav1.Duration{Duration: time.Hour}}}, "3")))
		names = append(names, name)
	}
	for _, name := range names {
		must(t, wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			x := &cxv1.CXExperiment{}
			err := e.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, x)
			return err == nil && x.Status.Phase == cxv1.PhaseProgressing, nil
		}))
	}
	fams0, err := e.mgr.Metrics()
	must(t, err)
	u0, _ := utils.ProcessUsage(e.mgr.Cmd.Process.Pid)
	const duration = 20 * time.Second
	var mu sync.Mutex
	var all sim.Stats
	all.Codes = map[int]int64{}
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := sim.Run(ctx, sim.Options{
				Client: e.c, Namespace: ns, Experiment: name, CollectorURL: e.mgr.CollectorURL, Token: token,
				Scenario: &sim.Scenario{Rate: 1e6, Batch: 100, Seed: 1, Segments: map[string]sim.SegmentScenario{
					"enterprise": {Share: 1, Variants: map[string]sim.Distribution{"control": {Satisfied: ptr(85.0)}}},
				}},
				Concurrency: max(1, 32/experiments), Duration: duration, WeightsEvery: time.Hour,
				HTTPClient: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second},
			})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			all.Sent += s.Sent
			all.Accepted += s.Accepted
			all.AckLatencies = append(all.AckLatencies, s.AckLatencies...)
			for k, v := range s.Codes {
				all.Codes[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	u1, _ := utils.ProcessUsage(e.mgr.Cmd.Process.Pid)
	fams1, err := e.mgr.Metrics()
	must(t, err)
	commits := float64(fams1["rapport_collector_commit_duration_seconds"].GetMetric()[0].GetHistogram().GetSampleCount() -
		fams0["rapport_collector_commit_duration_seconds"].GetMetric()[0].GetHistogram().GetSampleCount())
	return throughputResult{
		Experiments: experiments, BatchSize: 100, InFlight: 32, DurationS: duration.Seconds(),
		AcceptedPerSecond:   float64(all.Accepted) / duration.Seconds(),
		AckP50Ms:            float64(all.Percentile(0.5).Microseconds()) / 1000,
		AckP99Ms:            float64(all.Percentile(0.99).Microseconds()) / 1000,
		Rejected:            all.Sent - all.Accepted,
		CommitsPerSecond:    commits / duration.Seconds(),
		ManagerCPUCoresUsed: (u1.CPU - u0.CPU).Seconds() / duration.Seconds(),
		ManagerRSSMiB:       float64(u1.RSS) / (1 << 20),
	}
}
