//go:build bench

// Package cluster holds Rapport's cluster-level benchmarks, run against a
// local control plane and the real manager binary: rollback latency, scale
// with 1,000 (and 5,000) experiments, collector throughput, and what one
// tally write costs the API server. They report
// figures (t.Logf and BENCH_OUT) and never fail on a number.
//
//	go test -tags bench ./test/bench/cluster/ -run . -v -timeout 60m
//
// Environment: BENCH_OUT (a folder: each benchmark writes <name>.json there),
// BENCH_EXPERIMENTS (scale: comma-separated counts, default "1000"),
// BENCH_TRIALS (rollback latency trials per drop, default 20), BENCH_RUNS
// (collector throughput runs per size, default 3), BENCH_MANAGER_ENV
// (NAME=value pairs, space-separated, added to the managers' environment,
// e.g. "GOGC=200").
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/test/utils"
)

func ptr[T any](v T) *T { return &v }

// TestMain gives controller-runtime's clients a logger (they log nothing
// this package reads; without one, controller-runtime prints a warning with
// a stack trace).
func TestMain(m *testing.M) {
	if handler := os.Getenv(ceilingServeEnv); handler != "" {
		serveCeiling(handler)
	}
	logf.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

// env is a control plane, a client and a running manager.
type env struct {
	cp  *utils.ControlPlane
	c   client.Client
	mgr *utils.Manager
	// mgrs are all manager replicas; mgr is the first.
	mgrs []*utils.Manager
	// The control plane's processes, for their CPU time.
	apiserverPid, etcdPid int
}

func newEnv(t *testing.T, managerArgs ...string) *env {
	t.Helper()
	return newEnvReplicas(t, 1, managerArgs...)
}

// newEnvReplicas starts a control plane and n manager replicas. With more
// than one, they elect a leader as an install's do: one runs the
// controllers, every one runs the collector.
func newEnvReplicas(t *testing.T, n int, managerArgs ...string) *env {
	t.Helper()
	cp, c := newControlPlane(t)
	e := &env{cp: cp, c: c, apiserverPid: controlPlanePid(t, "kube-apiserver"), etcdPid: controlPlanePid(t, "etcd")}
	if n > 1 {
		managerArgs = append([]string{"--leader-election-namespace=default"}, managerArgs...)
	}
	for range n {
		mgr, err := utils.StartManager(context.Background(), utils.ManagerOptions{Kubeconfig: cp.Kubeconfig, LeaderElect: n > 1, Args: managerArgs,
			Env: strings.Fields(os.Getenv("BENCH_MANAGER_ENV"))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(mgr.Stop)
		e.mgrs = append(e.mgrs, mgr)
	}
	e.mgr = e.mgrs[0]
	return e
}

// newControlPlane starts a control plane, stopped at the end of the test,
// and returns it with a client for Rapport's and the Gateway API's kinds.
func newControlPlane(t *testing.T) (*utils.ControlPlane, client.Client) {
	t.Helper()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = cxv1.AddToScheme(scheme)
	_ = gwv1.Install(scheme)
	cp, err := utils.StartControlPlane(utils.EnvironmentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Stop() })
	cfg := *cp.Config
	cfg.QPS, cfg.Burst = 2000, 4000 // the benchmark's own client must not be the bottleneck
	c, err := client.New(&cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return cp, c
}

// shop creates a namespace with two Services, a segment and a token.
func (e *env) shop(ctx context.Context, t *testing.T) (string, string) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}}
	must(t, e.c.Create(ctx, ns))
	for _, name := range []string{"checkout-v1", "checkout-v2"} {
		must(t, e.c.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns.Name},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(8080)}}}}))
	}
	must(t, e.c.Create(ctx, &cxv1.CustomerSegment{ObjectMeta: metav1.ObjectMeta{Name: "enterprise", Namespace: ns.Name},
		Spec: cxv1.CustomerSegmentSpec{Match: cxv1.SegmentMatch{Headers: []cxv1.HeaderMatch{{Name: "x-tier", Value: "enterprise"}}}}}))
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	must(t, e.c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "feedback-token", Namespace: ns.Name, Labels: map[string]string{cxv1.LabelFeedbackToken: "true"}},
		Data:       map[string][]byte{"token": []byte(token)},
	}))
	return ns.Name, token
}

func (e *env) route(ctx context.Context, t *testing.T, ns, name string) {
	must(t, e.c.Create(ctx, &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw"}}},
			Rules: []gwv1.HTTPRouteRule{{
				Matches:     []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr(gwv1.PathMatchPathPrefix), Value: ptr("/" + name)}}},
				BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "checkout-v1", Port: ptr(gwv1.PortNumber(8080))}}}},
			}},
		},
	}))
}

func experiment(ns, name, route string, steps []cxv1.Step, maxDrop string) *cxv1.CXExperiment {
	return &cxv1.CXExperiment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: cxv1.CXExperimentSpec{
			Variants: []cxv1.Variant{
				{Name: "control", Control: true, Service: &cxv1.ServiceRef{Name: "checkout-v1", Port: 8080}},
				{Name: "one-page", Service: &cxv1.ServiceRef{Name: "checkout-v2", Port: 8080}},
			},
			Segments:       []string{"enterprise"},
			Traffic:        cxv1.Traffic{GatewayAPI: &cxv1.GatewayAPITraffic{HTTPRoute: route}},
			Steps:          steps,
			Promotion:      cxv1.PromotionManual,
			OnInconclusive: cxv1.InconclusiveHold,
			Satisfaction: cxv1.Satisfaction{Metric: cxv1.MetricCSAT, MaxDrop: maxDrop, Confidence: "95", MinResponses: 100,
				Source: cxv1.SatisfactionSource{Collector: &cxv1.CollectorSource{}}, Interval: metav1.Duration{Duration: 30 * time.Second}},
		},
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// quantile returns the q-quantile (0..1) of xs (nearest rank).
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// histogramQuantile estimates a quantile from a Prometheus histogram family
// (summing the series whose labels match).
func histogramQuantile(f *dto.MetricFamily, q float64, match map[string]string) float64 {
	if f == nil {
		return math.NaN()
	}
	var count uint64
	buckets := map[float64]uint64{}
	for _, m := range f.GetMetric() {
		ok := true
		for _, l := range m.GetLabel() {
			if v, want := match[l.GetName()]; want && l.GetValue() != v {
				ok = false
			}
		}
		if !ok {
			continue
		}
		h := m.GetHistogram()
		count += h.GetSampleCount()
		for _, b := range h.GetBucket() {
			buckets[b.GetUpperBound()] += b.GetCumulativeCount()
		}
	}
	if count == 0 {
		return math.NaN()
	}
	bounds := make([]float64, 0, len(buckets))
	for b := range buckets {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	rank := q * float64(count)
	for _, b := range bounds {
		if float64(buckets[b]) >= rank {
			return b
		}
	}
	return math.Inf(1)
}

// report writes a benchmark's figures to BENCH_OUT/<name>.json and the log.
func report(t *testing.T, name string, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	t.Logf("%s:\n%s", name, b)
	if dir := os.Getenv("BENCH_OUT"); dir != "" {
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(utils.RepoRoot(), dir)
		}
		must(t, os.MkdirAll(dir, 0o755))
		must(t, os.WriteFile(filepath.Join(dir, name+".json"), append(b, '\n'), 0o644))
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }
