//go:build bench

package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/test/utils"
)

// TestScale runs N experiments at once (BENCH_EXPERIMENTS, default 1000),
// each on its own route with one segment, 100 experiments per namespace.
// It measures the time for all to start, then feeds every experiment enough
// equal answers to be non-inferior (maxDrop 10 keeps that at 300 per arm;
// the first step sends half the traffic to each variant, so that the
// answers match the weights) and measures the time for all to advance one
// step, the API writes Rapport made per experiment for that step (from the
// API server's own request counters), the controller's CPU and memory, and
// its reconcile p99.
func TestScale(t *testing.T) {
	counts := []int{1000}
	if v := os.Getenv("BENCH_EXPERIMENTS"); v != "" {
		counts = nil
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			must(t, err)
			counts = append(counts, n)
		}
	}
	for _, n := range counts {
		t.Run(fmt.Sprint(n), func(t *testing.T) { scale(t, n) })
	}
}

type scaleResult struct {
	Experiments             int
	CreateSeconds           float64 // creating the objects (the benchmark's own writes)
	AllStartedSeconds       float64 // created -> all Progressing with their child route
	AllAdvancedSeconds      float64 // all feedback acknowledged -> all at step 2
	WritesPerExperimentStep float64 // Rapport's route + status writes per experiment for the step
	TallyWritesPerExp       float64 // collector commits per experiment for the feedback
	HistoryWritesPerExp     float64 // history ConfigMap writes per experiment for the step (at most one per interval or verdict change, never per commit)
	ReconcileP99Seconds     float64
	ControllerCPUSeconds    float64 // during start + advance
	ControllerRSSMiB        float64 // at the end
	FeedbackPerSecond       float64
	WritesByKind            map[string]int64 // resource[/subresource] verb code -> count during the step
}

func scale(t *testing.T, n int) {
	e := newEnv(t)
	ctx := context.Background()
	const perNS = 100
	type item struct{ ns, token, name string }
	var items []item
	start := time.Now()
	for i := 0; i < n; i += perNS {
		ns, token := e.shop(ctx, t)
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(16)
		for j := i; j < min(i+perNS, n); j++ {
			name := fmt.Sprintf("exp-%05d", j)
			items = append(items, item{ns, token, name})
			g.Go(func() error {
				e.route(gctx, t, ns, name)
				return e.c.Create(gctx, experiment(ns, name, name, []cxv1.Step{
					// No hold: the step waits only for evidence. Half the
					// traffic, as the answers below are split: at any other
					// weight the sample-ratio check would hold the segment.
					{Weight: 50},
					{Weight: 80, MinDuration: metav1.Duration{Duration: time.Hour}},
				}, "10"))
			})
		}
		must(t, g.Wait())
	}
	created := time.Now()
	usage0, _ := utils.ProcessUsage(e.mgr.Cmd.Process.Pid)
	waitAll(t, e, n, func(x *cxv1.CXExperiment) bool {
		return x.Status.Phase == cxv1.PhaseProgressing && x.Status.Traffic.AppliedAt != nil
	})
	started := time.Now()
	t.Logf("%d experiments created in %s, all started %s later", n, created.Sub(start).Round(time.Millisecond), started.Sub(created).Round(time.Millisecond))

	writes0 := apiWrites(t, e)
	// Feed each experiment 300 + 300 equal answers in one batch.
	body := feedbackBody(300)
	var acked atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	feedStart := time.Now()
	for _, it := range items {
		g.Go(func() error {
			req, _ := http.NewRequestWithContext(gctx, http.MethodPost,
				fmt.Sprintf("%s/v1/namespaces/%s/experiments/%s/responses", e.mgr.CollectorURL, it.ns, it.name), bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+it.token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				return fmt.Errorf("%s/%s: collector answered %d", it.ns, it.name, resp.StatusCode)
			}
			acked.Add(600)
			return nil
		})
	}
	must(t, g.Wait())
	fed := time.Now()
	waitAll(t, e, n, func(x *cxv1.CXExperiment) bool { return x.Status.CurrentStep == 2 && x.Status.Traffic.AppliedAt != nil })
	advanced := time.Now()
	writes1 := apiWrites(t, e)
	usage1, _ := utils.ProcessUsage(e.mgr.Cmd.Process.Pid)
	fams, err := e.mgr.Metrics()
	must(t, err)

	byKind := map[string]int64{}
	var rapportWrites, tallyWrites, historyWrites int64
	for k, v := range writes1 {
		d := v - writes0[k]
		if d == 0 {
			continue
		}
		byKind[k] = d
		switch {
		case strings.HasPrefix(k, "httproutes "), strings.HasPrefix(k, "cxexperiments"):
			rapportWrites += d
		case strings.HasPrefix(k, "responsetallies "):
			tallyWrites += d
		case strings.HasPrefix(k, "configmaps "):
			historyWrites += d
		}
	}
	t.Logf("API writes during the step, by resource, verb and code: %v", byKind)
	report(t, fmt.Sprintf("scale-%d", n), scaleResult{
		Experiments:             n,
		CreateSeconds:           seconds(created.Sub(start)),
		AllStartedSeconds:       seconds(started.Sub(created)),
		AllAdvancedSeconds:      seconds(advanced.Sub(fed)),
		WritesPerExperimentStep: float64(rapportWrites) / float64(n),
		TallyWritesPerExp:       float64(tallyWrites) / float64(n),
		HistoryWritesPerExp:     float64(historyWrites) / float64(n),
		WritesByKind:            byKind,
		ReconcileP99Seconds:     histogramQuantile(fams["controller_runtime_reconcile_time_seconds"], 0.99, map[string]string{"controller": "cxexperiment"}),
		ControllerCPUSeconds:    seconds(usage1.CPU - usage0.CPU),
		ControllerRSSMiB:        float64(usage1.RSS) / (1 << 20),
		FeedbackPerSecond:       float64(acked.Load()) / fed.Sub(feedStart).Seconds(),
	})
}

// waitAll polls until every experiment satisfies ok (a list every 250 ms:
// cheaper than watching thousands of objects), and fails after a deadline
// that grows with n.
func waitAll(t *testing.T, e *env, n int, ok func(*cxv1.CXExperiment) bool) {
	done := 0
	var behind *cxv1.CXExperiment // one that has not got there, for the failure message
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, time.Duration(n)*100*time.Millisecond+2*time.Minute, true,
		func(ctx context.Context) (bool, error) {
			var list cxv1.CXExperimentList
			if err := e.c.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
				return false, err
			}
			done, behind = 0, nil
			for i := range list.Items {
				if ok(&list.Items[i]) {
					done++
				} else if behind == nil {
					behind = &list.Items[i]
				}
			}
			return done == n, nil
		})
	if err != nil {
		why := ""
		if behind != nil {
			why = fmt.Sprintf("; %s/%s is %s at step %d:", behind.Namespace, behind.Name, behind.Status.Phase, behind.Status.CurrentStep)
			for _, c := range behind.Status.Conditions {
				why += fmt.Sprintf(" %s=%s (%s: %s)", c.Type, c.Status, c.Reason, c.Message)
			}
		}
		t.Fatalf("only %d of %d experiments got there: %v%s", done, n, err, why)
	}
}

func feedbackBody(perArm int) []byte {
	type r struct {
		Variant string `json:"variant"`
		Segment string `json:"segment"`
		Score   int    `json:"score"`
	}
	var rs []r
	for _, v := range []string{"control", "one-page"} {
		for i := range perArm {
			score := 5
			if i%100 < 15 {
				score = 2
			}
			rs = append(rs, r{v, "enterprise", score})
		}
	}
	b, _ := json.Marshal(map[string]any{"responses": rs})
	return b
}

// apiWrites reads the API server's request counters: write requests (verbs
// other than GET, LIST and WATCH) by resource.
func apiWrites(t *testing.T, e *env) map[string]int64 {
	apiClient, err := kubernetes.NewForConfig(e.cp.Config) // this environment's API server
	must(t, err)
	raw, err := apiClient.RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	must(t, err)
	out := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		labels := line[strings.Index(line, "{")+1 : strings.LastIndex(line, "}")]
		verb, resource := labelValue(labels, "verb"), labelValue(labels, "resource")
		if verb == "GET" || verb == "LIST" || verb == "WATCH" {
			continue
		}
		if sub := labelValue(labels, "subresource"); sub != "" {
			resource += "/" + sub
		}
		resource += " " + verb + " " + labelValue(labels, "code")
		v, err := strconv.ParseFloat(strings.TrimSpace(line[strings.LastIndex(line, "}")+1:]), 64)
		if err == nil {
			out[resource] += int64(v)
		}
	}
	return out
}

func labelValue(labels, name string) string {
	i := strings.Index(labels, name+`="`)
	if i < 0 {
		return ""
	}
	rest := labels[i+len(name)+2:]
	return rest[:strings.Index(rest, `"`)]
}
