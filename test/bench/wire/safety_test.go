//go:build bench

// Package wire benchmarks time to safety on the wire: from the collector's
// acknowledgement of the decisive answer to the first request of the
// segment that a real Gateway API proxy (Traefik) no longer sends to the
// rolled-back variant, while customers' requests flow continuously. Like
// test/e2e, it runs itself again in a private network namespace
// (test/utils/netns) with a control plane, Traefik, the manager and variant
// backends on fixed ports. It reports figures (t.Logf and BENCH_OUT) and
// never fails on a number.
//
//	TRAEFIK_BIN=$(hack/traefik-bin.sh) KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh kube-apiserver etcd) \
//	  go test -tags bench ./test/bench/wire/ -run . -v -timeout 30m
//
// Environment: BENCH_OUT (a folder: writes time-to-safety.json there),
// BENCH_TRIALS (trials per configuration, default 20).
package wire

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
	toolswatch "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/routing/gatewayapi"
	"github.com/rapport-dev/rapport/internal/sim"
	"github.com/rapport-dev/rapport/test/utils"
	"github.com/rapport-dev/rapport/test/utils/netns"
	"github.com/rapport-dev/rapport/test/utils/wire"
)

// Fixed addresses inside the private network namespace.
const (
	listenPort    = 8000
	pingAddr      = "127.0.0.1:8080"
	collectorAddr = "127.0.0.1:8082"
	metricsAddr   = "127.0.0.1:8083"
	probeAddr     = "127.0.0.1:8081"
	controlPort   = 9001
	variantPort   = 9002
)

var unavailable error

func TestMain(m *testing.M) {
	logf.SetLogger(logr.Discard())
	if netns.Inside() {
		if err := netns.Setup(); err != nil {
			unavailable = err
		}
		os.Exit(m.Run())
	}
	utils.DownloadModules() // the namespace has no network; the suite builds ./cmd there
	code, err := netns.Reexec(os.Args[1:])
	if err == nil {
		os.Exit(code)
	}
	unavailable = err
	os.Exit(m.Run())
}

func ptr[T any](v T) *T { return &v }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// proxyConfig is one way to run Traefik, with or without unrelated route
// changes going on (a busy cluster: other teams' routes and endpoints).
type proxyConfig struct {
	Name string
	// Throttle is providers.providersThrottleDuration ("" = Traefik's 2s).
	Throttle string
	// Churn is how often an unrelated route changes (0: never).
	Churn time.Duration
}

// result is one configuration's figures, in seconds.
type result struct {
	Config       string
	Throttle     string
	Churn        string
	Trials       int
	Measured     int
	TimeToSafety quantiles `json:"timeToSafety"`
	// The parts: the controller (decisive commit -> route write returned),
	// the API server (route write returned -> a separate watcher, like the
	// proxy's informer, sees it) and the proxy (the watcher sees it -> the
	// first request the proxy no longer sends to the variant: its watch,
	// throttle, configuration build and reload, plus the probes' spacing).
	Controller quantiles `json:"controller"`
	APIServer  quantiles `json:"apiServer"`
	Proxy      quantiles `json:"proxy"`
	// The proxy's part, split where its provider writes the Gateway's
	// status: the provider (watch, configuration build, status writes) and
	// the rest (its throttle, the configuration applied, the next probe).
	ProxyProvider  quantiles `json:"proxyProvider"`
	ProxyDataPlane quantiles `json:"proxyThrottleAndApply"`
	// ClientAck is the client's receipt of the decisive batch's 202 ->
	// first safe request (the ack travels while the rollback happens).
	ClientAck quantiles `json:"fromClientAck"`
	// VariantAfterAck counts the segment's requests still served by the
	// variant after the decisive acknowledgement, per trial.
	VariantAfterAck quantiles `json:"variantRequestsAfterAck"`
	// ProbeGapMedianMs is the median time between two probes, in
	// milliseconds: the resolution of the time to safety.
	ProbeGapMedianMs float64 `json:"probeGapMedianMs"`
	// LoadAverage is the machine's 1-minute load average before and after
	// the configuration's trials (2 cores, shared).
	LoadAverage [2]string `json:"loadAverage"`
}

type quantiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func quantilesOf(xs []float64) quantiles {
	return quantiles{P50: quantile(xs, 0.5), P90: quantile(xs, 0.9), P99: quantile(xs, 0.99), Max: quantile(xs, 1)}
}

// quantile returns the q-quantile (0..1) of xs (nearest rank).
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return math.Round(s[max(0, min(i, len(s)-1))]*1000) / 1000
}

// TestTimeToSafety runs BENCH_TRIALS rollbacks per proxy configuration.
func TestTimeToSafety(t *testing.T) {
	if unavailable != nil {
		if utils.InCI() {
			t.Fatalf("no private network namespace: %v", unavailable)
		}
		t.Skipf("no private network namespace: %v", unavailable)
	}
	trials := 20
	if n, err := strconv.Atoi(os.Getenv("BENCH_TRIALS")); err == nil && n > 0 {
		trials = n
	}
	e := newEnv(t)
	configs := []proxyConfig{
		{Name: "Traefik defaults, quiet cluster", Throttle: ""},
		{Name: "Traefik defaults, busy cluster", Throttle: "", Churn: 300 * time.Millisecond},
		{Name: "throttle 100ms, busy cluster", Throttle: "100ms", Churn: 300 * time.Millisecond},
		{Name: "throttle 0, busy cluster", Throttle: "0s", Churn: 300 * time.Millisecond},
	}
	var results []result
	for _, pc := range configs {
		loadBefore := loadAverage()
		e.startProxy(t, pc)
		stopChurn := e.churn(t, pc.Churn)
		var tts, ctrl, api, prox, provider, dataPlane, fromAck, after, gaps []float64
		measured := 0
		for i := range trials {
			tr, ok := e.trial(t, uint64(7000+i))
			if !ok {
				continue
			}
			measured++
			tts, ctrl, api = append(tts, tr.timeToSafety), append(ctrl, tr.controller), append(api, tr.apiServer)
			prox, provider, dataPlane = append(prox, tr.proxy), append(provider, tr.provider), append(dataPlane, tr.dataPlane)
			fromAck, after, gaps = append(fromAck, tr.fromClientAck), append(after, float64(tr.variantAfterAck)), append(gaps, tr.probeGap)
			t.Logf("%s, trial %d: time to safety %.3fs (controller %.3fs, API server %.3fs, proxy %.3fs = provider %.3fs + throttle and apply %.3fs); %d requests on the variant after the decisive answer",
				pc.Name, i, tr.timeToSafety, tr.controller, tr.apiServer, tr.proxy, tr.provider, tr.dataPlane, tr.variantAfterAck)
		}
		stopChurn()
		e.proxy.Stop()
		throttle := pc.Throttle
		if throttle == "" {
			throttle = "2s (default)"
		}
		churn := "none"
		if pc.Churn > 0 {
			churn = "an unrelated route every " + pc.Churn.String()
		}
		results = append(results, result{
			Config: pc.Name, Throttle: throttle, Churn: churn, Trials: trials, Measured: measured,
			TimeToSafety: quantilesOf(tts), Controller: quantilesOf(ctrl), APIServer: quantilesOf(api),
			Proxy: quantilesOf(prox), ProxyProvider: quantilesOf(provider), ProxyDataPlane: quantilesOf(dataPlane), ClientAck: quantilesOf(fromAck),
			VariantAfterAck: quantilesOf(after), ProbeGapMedianMs: quantile(gaps, 0.5),
			LoadAverage: [2]string{loadBefore, loadAverage()},
		})
	}
	b, _ := json.MarshalIndent(results, "", "  ")
	t.Logf("time to safety:\n%s", b)
	if dir := os.Getenv("BENCH_OUT"); dir != "" {
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(utils.RepoRoot(), dir)
		}
		must(t, os.MkdirAll(dir, 0o755))
		must(t, os.WriteFile(filepath.Join(dir, "time-to-safety.json"), append(b, '\n'), 0o644))
	}
}

// env is a control plane, a manager, backends and (per configuration) a proxy.
type env struct {
	cp      *utils.ControlPlane
	c       client.Client
	mgr     *utils.Manager
	proxy   *wire.Proxy
	gateway wire.Gateway
	client  *wire.Client
	dir     string
}

func newEnv(t *testing.T) *env {
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = cxv1.AddToScheme(scheme)
	_ = gwv1.Install(scheme)
	dir := t.TempDir()
	bin := filepath.Join(dir, "manager")
	build := exec.Command("go", "build", "-o", bin, "./cmd")
	build.Dir = utils.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd: %v: %s", err, out)
	}
	cp, err := utils.StartControlPlane(utils.EnvironmentOptions{Ports: &utils.ControlPlanePorts{APIServer: 6443, Etcd: 2379, EtcdPeer: 2380}})
	must(t, err)
	t.Cleanup(func() { _ = cp.Stop() })
	cfg := *cp.Config
	cfg.QPS, cfg.Burst = 2000, 4000
	c, err := client.New(&cfg, client.Options{Scheme: scheme})
	must(t, err)
	for name, port := range map[string]int{"checkout-v1": controlPort, "checkout-v2": variantPort} {
		b, err := wire.StartBackend(name, fmt.Sprintf("%s:%d", netns.Host, port), name)
		must(t, err)
		t.Cleanup(b.Close)
	}
	mgr, err := utils.StartManager(context.Background(), utils.ManagerOptions{Kubeconfig: cp.Kubeconfig, Binary: bin,
		Addrs: &utils.ManagerAddrs{Collector: collectorAddr, Metrics: metricsAddr, Probe: probeAddr}})
	must(t, err)
	t.Cleanup(mgr.Stop)
	listen := fmt.Sprintf("%s:%d", netns.Host, listenPort)
	return &env{cp: cp, c: c, mgr: mgr, dir: dir, client: wire.NewClient(listen, 4),
		gateway: wire.Gateway{ClassName: "bench", ControllerName: wire.TraefikControllerName, Namespace: "gateway-system", Name: "shop", Port: listenPort}}
}

func (e *env) startProxy(t *testing.T, pc proxyConfig) {
	p, err := wire.StartProxy(context.Background(), wire.ProxyOptions{
		Kubeconfig: e.cp.Kubeconfig, Listen: fmt.Sprintf("%s:%d", netns.Host, listenPort), Ping: pingAddr,
		ProvidersThrottle: pc.Throttle, LogPath: filepath.Join(e.dir, "proxy.log"),
	})
	must(t, err)
	e.proxy = p
	_, err = e.gateway.Install(context.Background(), e.c)
	must(t, err)
}

// churn changes an unrelated route every period until the returned
// function is called, as other teams' deployments do in a busy cluster.
func (e *env) churn(t *testing.T, period time.Duration) func() {
	if period == 0 {
		return func() {}
	}
	ctx, stop := context.WithCancel(context.Background())
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "other-team-"}}
	must(t, e.c.Create(ctx, ns))
	route := &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "catalog", Namespace: ns.Name},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{e.gateway.ParentRef()}},
			Hostnames:       []gwv1.Hostname{"catalog.test"},
			Rules: []gwv1.HTTPRouteRule{{
				Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterRequestHeaderModifier,
					RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "x-release", Value: "0"}}}}},
				BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "catalog", Port: ptr(gwv1.PortNumber(8080))}}}},
			}},
		},
	}
	must(t, e.c.Create(ctx, route))
	must(t, e.c.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "catalog", Namespace: ns.Name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(controlPort)}}}}))
	must(t, wire.PublishEndpoints(ctx, e.c, ns.Name, "catalog", controlPort, netns.Host))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; ctx.Err() == nil; i++ {
			patch := fmt.Sprintf(`{"spec":{"rules":[{"filters":[{"type":"RequestHeaderModifier","requestHeaderModifier":{"set":[{"name":"x-release","value":"%d"}]}}],"backendRefs":[{"name":"catalog","port":8080}]}]}}`, i)
			_ = e.c.Patch(ctx, route, client.RawPatch(types.MergePatchType, []byte(patch)))
			select {
			case <-ctx.Done():
			case <-time.After(period):
			}
		}
	}()
	return func() { stop(); <-done }
}

// shop creates a namespace with the checkout Services, their endpoints, the
// parent route, one segment and a token.
func (e *env) shop(ctx context.Context, t *testing.T) (ns, host, token string) {
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}}
	must(t, e.c.Create(ctx, n))
	ns, host = n.Name, n.Name+".shop.test"
	for name, port := range map[string]int32{"checkout-v1": controlPort, "checkout-v2": variantPort} {
		must(t, e.c.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(port)}}}}))
		must(t, wire.PublishEndpoints(ctx, e.c, ns, name, port, netns.Host))
	}
	must(t, e.c.Create(ctx, &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: ns},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{e.gateway.ParentRef()}},
			Hostnames:       []gwv1.Hostname{gwv1.Hostname(host)},
			Rules: []gwv1.HTTPRouteRule{{
				Matches:     []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr(gwv1.PathMatchPathPrefix), Value: ptr("/checkout")}}},
				BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "checkout-v1", Port: ptr(gwv1.PortNumber(8080))}}}},
			}},
		},
	}))
	must(t, e.c.Create(ctx, &cxv1.CustomerSegment{ObjectMeta: metav1.ObjectMeta{Name: "enterprise", Namespace: ns},
		Spec: cxv1.CustomerSegmentSpec{Match: cxv1.SegmentMatch{Headers: []cxv1.HeaderMatch{{Name: "x-tier", Value: "enterprise"}}}}}))
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token = hex.EncodeToString(b)
	must(t, e.c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "feedback-token", Namespace: ns, Labels: map[string]string{cxv1.LabelFeedbackToken: "true"}},
		Data:       map[string][]byte{"token": []byte(token)},
	}))
	return ns, host, token
}

// probe is one request of the segment's customers.
type probe struct {
	sent    time.Time
	variant bool
}

type trialResult struct {
	timeToSafety, controller, apiServer, proxy, provider, dataPlane, fromClientAck, probeGap float64
	variantAfterAck                                                                          int
}

func (e *env) trial(t *testing.T, seed uint64) (trialResult, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ns, host, token := e.shop(ctx, t)
	exp := &cxv1.CXExperiment{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-redesign", Namespace: ns},
		Spec: cxv1.CXExperimentSpec{
			Variants: []cxv1.Variant{
				{Name: "control", Control: true, Service: &cxv1.ServiceRef{Name: "checkout-v1", Port: 8080}},
				{Name: "one-page", Service: &cxv1.ServiceRef{Name: "checkout-v2", Port: 8080}},
			},
			Segments:       []string{"enterprise"},
			Traffic:        cxv1.Traffic{GatewayAPI: &cxv1.GatewayAPITraffic{HTTPRoute: "checkout"}},
			Steps:          []cxv1.Step{{Weight: 50, MinDuration: metav1.Duration{Duration: time.Hour}}},
			Promotion:      cxv1.PromotionManual,
			OnInconclusive: cxv1.InconclusiveHold,
			Satisfaction: cxv1.Satisfaction{Metric: cxv1.MetricCSAT, MaxDrop: "3", Confidence: "95", MinResponses: 100,
				Source: cxv1.SatisfactionSource{Collector: &cxv1.CollectorSource{}}, Interval: metav1.Duration{Duration: 30 * time.Second}},
		},
	}
	must(t, e.c.Create(ctx, exp))
	defer func() {
		// Namespaces never finish deleting here (no namespace controller),
		// and the Service IP range is small: clean up what matters.
		// Every trial sees the same routes: delete this one's.
		_ = e.c.Delete(context.Background(), exp)
		for _, name := range []string{"checkout-v1", "checkout-v2"} {
			_ = e.c.Delete(context.Background(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}})
		}
		_ = e.c.Delete(context.Background(), &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: ns}})
	}()
	req := wire.Request{Host: host, Path: "/checkout", Header: map[string]string{"x-tier": "enterprise"}}
	// The proxy serves the split before the customers answer; then it
	// stays quiet for longer than its throttle, as between the real start
	// of an experiment and its rollback.
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		s := e.client.Split(ctx, req, 100)
		return s.Served["checkout-v2"] > 20 && len(s.Errors) == 0, nil
	}); err != nil {
		t.Logf("seed %d: the proxy never split the segment: %v", seed, err)
		return trialResult{}, false
	}
	time.Sleep(2500 * time.Millisecond) // longer than Traefik's default throttle: no reload pending

	child := gatewayapi.ChildRouteName(exp.Name)
	var routeChangedAt time.Time
	changed := make(chan struct{})
	go e.watchDeletion(ctx, ns, child, func(at time.Time) { routeChangedAt = at; close(changed) })
	// The proxy's provider writes the Gateway's status (one route fewer
	// attached) when it has built the configuration without the child
	// route, just before it hands the configuration on to be applied.
	gw := &gwv1.Gateway{}
	must(t, e.c.Get(ctx, types.NamespacedName{Namespace: e.gateway.Namespace, Name: e.gateway.Name}, gw))
	var builtAt time.Time
	built := make(chan struct{})
	go e.watchAttached(ctx, gw.Status.Listeners[0].AttachedRoutes-1, func(at time.Time) { builtAt = at; close(built) })

	// Customers of the segment, continuously.
	var mu sync.Mutex
	var probes []probe
	probeCtx, stopProbes := context.WithCancel(ctx)
	var pw sync.WaitGroup
	for range 2 {
		pw.Go(func() {
			for probeCtx.Err() == nil {
				sent := time.Now()
				reply, err := e.client.Get(probeCtx, req, nil)
				if err != nil {
					continue
				}
				mu.Lock()
				probes = append(probes, probe{sent: sent, variant: reply.Backend == "checkout-v2"})
				mu.Unlock()
			}
		})
	}
	// Their answers: the variant 20 points worse.
	scenario := &sim.Scenario{Rate: 2000, Batch: 20, Seed: seed, Segments: map[string]sim.SegmentScenario{
		"enterprise": {Share: 1, Variants: map[string]sim.Distribution{"control": {Satisfied: ptr(85.0)}, "one-page": {Satisfied: ptr(65.0)}}},
	}}
	var acks []time.Time
	simCtx, stopSim := context.WithCancel(ctx)
	simDone := make(chan struct{})
	go func() {
		defer close(simDone)
		_, _ = sim.Run(simCtx, sim.Options{Client: e.c, Namespace: ns, Experiment: exp.Name, CollectorURL: e.mgr.CollectorURL,
			Token: token, Scenario: scenario, Concurrency: 2, WeightsEvery: time.Hour,
			OnBatch: func(r sim.BatchResult) {
				if r.Code == http.StatusAccepted {
					mu.Lock()
					acks = append(acks, r.AckedAt)
					mu.Unlock()
				}
			}})
	}()
	finish := func() { stopSim(); <-simDone; stopProbes(); pw.Wait() }
	select {
	case <-changed:
	case <-ctx.Done():
		finish()
		t.Logf("seed %d: no rollback in time", seed)
		return trialResult{}, false
	}
	stopSim()
	<-simDone
	// Keep probing until the proxy has sent 300 requests in a row to the
	// control, and at least 3 s (Traefik's default throttle, and more).
	for ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond) // sampling the probes' progress
		mu.Lock()
		streak := 0
		for i := len(probes) - 1; i >= 0 && !probes[i].variant; i-- {
			streak++
		}
		mu.Unlock()
		if streak >= 300 && time.Since(routeChangedAt) > 3*time.Second {
			break
		}
	}
	stopProbes()
	pw.Wait()
	select {
	case <-built:
	case <-ctx.Done():
		t.Logf("seed %d: the proxy never wrote the Gateway's status without the child route", seed)
		return trialResult{}, false
	}

	final := &cxv1.CXExperiment{}
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := e.c.Get(ctx, client.ObjectKeyFromObject(exp), final); err != nil {
			return false, err
		}
		return len(final.Status.Rollbacks) > 0 && final.Status.Rollbacks[0].TrafficRestoredAt != nil && final.Status.Rollbacks[0].DecisiveResponseAt != nil, nil
	}); err != nil {
		t.Logf("seed %d: status never recorded the rollback: %v", seed, err)
		return trialResult{}, false
	}
	rb := final.Status.Rollbacks[0]
	decisive, restored := rb.DecisiveResponseAt.Time, rb.TrafficRestoredAt.Time

	sort.Slice(probes, func(i, j int) bool { return probes[i].sent.Before(probes[j].sent) })
	last := -1
	for i, p := range probes {
		if p.variant {
			last = i
		}
	}
	if last < 0 || last+1 >= len(probes) {
		t.Logf("seed %d: %d probes, last on the variant at %d: cannot tell when the proxy switched", seed, len(probes), last)
		return trialResult{}, false
	}
	safe := probes[last+1].sent
	var r trialResult
	r.timeToSafety = safe.Sub(decisive).Seconds()
	r.controller = restored.Sub(decisive).Seconds()
	r.apiServer = routeChangedAt.Sub(restored).Seconds()
	r.proxy = safe.Sub(routeChangedAt).Seconds()
	r.provider = builtAt.Sub(routeChangedAt).Seconds()
	r.dataPlane = safe.Sub(builtAt).Seconds()
	var gaps []float64
	for i := 1; i < len(probes); i++ {
		gaps = append(gaps, probes[i].sent.Sub(probes[i-1].sent).Seconds()*1000)
		if probes[i].sent.After(decisive) && probes[i].variant {
			r.variantAfterAck++
		}
	}
	r.probeGap = quantile(gaps, 0.5)
	sort.Slice(acks, func(i, j int) bool { return acks[i].Before(acks[j]) })
	for _, a := range acks {
		if !a.Before(decisive) {
			r.fromClientAck = safe.Sub(a).Seconds()
			break
		}
	}
	return r, true
}

// watchDeletion calls changed once the named route is deleted, as a
// gateway's informer would see it.
func (e *env) watchDeletion(ctx context.Context, ns, name string, changed func(time.Time)) {
	wc, err := client.NewWithWatch(e.cp.Config, client.Options{Scheme: e.c.Scheme()})
	if err != nil {
		return
	}
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
	_, _ = toolswatch.UntilWithSync(ctx, lw, &gwv1.HTTPRoute{}, nil, func(ev watch.Event) (bool, error) {
		if r, ok := ev.Object.(*gwv1.HTTPRoute); ok && ev.Type == watch.Deleted && r.Name == name {
			changed(time.Now())
			return true, nil
		}
		return false, nil
	})
}

// watchAttached calls seen once the Gateway's first listener reports want
// attached routes.
func (e *env) watchAttached(ctx context.Context, want int32, seen func(time.Time)) {
	wc, err := client.NewWithWatch(e.cp.Config, client.Options{Scheme: e.c.Scheme()})
	if err != nil {
		return
	}
	ns := e.gateway.Namespace
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, _ metav1.ListOptions) (runtime.Object, error) {
			l := &gwv1.GatewayList{}
			err := wc.List(ctx, l, client.InNamespace(ns))
			return l, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return wc.Watch(ctx, &gwv1.GatewayList{}, client.InNamespace(ns), &client.ListOptions{Raw: &o})
		},
	}
	_, _ = toolswatch.UntilWithSync(ctx, lw, &gwv1.Gateway{}, nil, func(ev watch.Event) (bool, error) {
		if g, ok := ev.Object.(*gwv1.Gateway); ok && ev.Type == watch.Modified && g.Name == e.gateway.Name &&
			len(g.Status.Listeners) > 0 && g.Status.Listeners[0].AttachedRoutes == want {
			seen(time.Now())
			return true, nil
		}
		return false, nil
	})
}

// loadAverage is the 1-minute load average (/proc/loadavg).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}
