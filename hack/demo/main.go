// Command demo shows Rapport at work with no cluster: it starts a local
// control plane (etcd and kube-apiserver built by hack/envtest-assets.sh),
// installs the Gateway API and Rapport CRDs, runs the manager with its
// feedback collector, applies a shop (hack/demo/shop.yaml) and customers
// (hack/demo/scenario.yaml), shows the rollout live and ends with the story.
// Ctrl-C or the end stops everything it started.
//
// The customers are real HTTP requests through a Gateway API proxy
// (Traefik, built by hack/traefik-bin.sh) to small variant backends, all in
// a private network namespace the demo creates (wire.go). Where the machine
// refuses one (no root, no user namespaces), the demo says why and
// simulates the customers instead: their answers go straight to the
// collector.
//
// With DEMO_CLUSTER=existing it uses the cluster of KUBECONFIG instead (the
// CRDs are installed when missing; the manager runs locally; the demo
// namespace is deleted at the end), with simulated customers: the proxy and
// the backends of the real customers live in the demo's own namespace.
//
// Run it with `make demo`.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/sim"
	"github.com/rapport-dev/rapport/test/utils"
	"github.com/rapport-dev/rapport/test/utils/netns"
)

const (
	demoNS  = "shop"
	expName = "checkout-redesign"
)

func main() {
	manager := flag.String("manager", "bin/manager", "Path of the manager binary (make build).")
	shop := flag.String("shop", "hack/demo/shop.yaml", "Manifests of the demo shop.")
	scenario := flag.String("scenario", "hack/demo/scenario.yaml", "Simulated customers.")
	timeout := flag.Duration("timeout", 4*time.Minute, "Give up after this long.")
	flag.Parse()
	logf.SetLogger(zap.New(zap.WriteTo(io.Discard)))

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, *timeout)
	defer cancelTimeout()

	if !netns.Inside() && os.Getenv("DEMO_CLUSTER") != "existing" {
		if code, ok := enterWire(os.Stdout); ok {
			os.Exit(code)
		}
	}
	d := &demo{manager: *manager, shopFile: *shop, scenarioFile: *scenario, out: os.Stdout, wire: netns.Inside()}
	if d.wire {
		if err := netns.Setup(); err != nil {
			fmt.Fprintln(os.Stderr, "demo:", err)
			os.Exit(1)
		}
	}
	err := d.run(ctx)
	d.cleanup()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type demo struct {
	manager, shopFile, scenarioFile string
	out                             io.Writer

	dir        string
	env        *envtest.Environment
	kubeconfig string
	existing   bool
	mgrCmd     *exec.Cmd
	mgrLog     *os.File
	c          client.Client
	collector  string
	// wire: real customers, inside a private network namespace (wire.go).
	wire   bool
	onWire *wireShop
	// notified receives the notifications of rollbacks (notify.go).
	notified *receiver
	// answered says what the browser and the webhook counted (survey.go).
	answered []string
	// assignmentKey signs the customers' assignments (survey.go).
	assignmentKey assignmentKey
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "\033[1m==>\033[0m "+format+"\n", args...)
}

func (d *demo) run(ctx context.Context) error {
	var err error
	if d.dir, err = os.MkdirTemp("", "rapport-demo-"); err != nil {
		return err
	}
	start := time.Now()
	cfg, err := d.controlPlane(ctx)
	if err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = cxv1.AddToScheme(scheme)
	_ = gwv1.Install(scheme)
	_ = apiextensionsv1.AddToScheme(scheme)
	if d.c, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	if d.existing {
		if err := d.installCRDs(ctx); err != nil {
			return err
		}
	}
	if err := d.startManager(ctx); err != nil {
		return err
	}
	if d.wire {
		if err := d.startWire(ctx); err != nil {
			return err
		}
		d.say("applying the shop (%s): HTTPRoute checkout -> checkout-v1, segments enterprise and new-customers", d.shopFile)
		if err := d.apply(ctx, d.shopFile, func(kind string) bool { return kind != "CXExperiment" }); err != nil {
			return err
		}
		if err := d.notifications(ctx); err != nil {
			return err
		}
		if err := d.openShop(ctx); err != nil {
			return err
		}
		d.say("starting experiment %s", expName)
		if err := d.apply(ctx, d.shopFile, func(kind string) bool { return kind == "CXExperiment" }); err != nil {
			return err
		}
	} else {
		d.say("applying the shop (%s): HTTPRoute checkout -> checkout-v1, segments enterprise and new-customers, experiment %s", d.shopFile, expName)
		if err := d.apply(ctx, d.shopFile, func(kind string) bool { return kind != "CXExperiment" }); err != nil {
			return err
		}
		if err := d.notifications(ctx); err != nil {
			return err
		}
		if err := d.apply(ctx, d.shopFile, func(kind string) bool { return kind == "CXExperiment" }); err != nil {
			return err
		}
	}
	if d.wire {
		d.say("ready in %s; the demo runs in its own network namespace, look inside with: sudo nsenter -t %d -n %s --kubeconfig %s get cxe,cseg,httproute -n %s",
			time.Since(start).Round(100*time.Millisecond), netns.HostPID(), filepath.Join(d.assets(), "kubectl"), d.kubeconfig, demoNS)
	} else {
		d.say("ready in %s; try: kubectl --kubeconfig %s get cxe,cseg,httproute -n %s", time.Since(start).Round(100*time.Millisecond), d.kubeconfig, demoNS)
	}
	return d.simulate(ctx)
}

// notifications starts the demo's webhook receiver and subscribes it to the
// experiment's rollbacks.
func (d *demo) notifications(ctx context.Context) error {
	r, err := startReceiver()
	if err != nil {
		return err
	}
	d.notified = r
	if err := d.subscribe(ctx, r); err != nil {
		return err
	}
	d.say("notifications: rollbacks go to a signed webhook, received by the demo at %s (rapport-notifications-cm in namespace %s)", r.url, demoNS)
	return nil
}

// controlPlane starts etcd and kube-apiserver with the CRDs, or connects to
// the existing cluster.
func (d *demo) controlPlane(_ context.Context) (*rest.Config, error) {
	if os.Getenv("DEMO_CLUSTER") == "existing" {
		d.existing = true
		d.kubeconfig = os.Getenv("KUBECONFIG")
		if d.kubeconfig == "" {
			d.kubeconfig = filepath.Join(os.Getenv("HOME"), ".kube", "config")
		}
		d.say("using the existing cluster of %s", d.kubeconfig)
		return clientcmd.BuildConfigFromFlags("", d.kubeconfig)
	}
	d.say("starting a local control plane (etcd + kube-apiserver from ./bin/k8s) with the Gateway API and Rapport CRDs")
	opts := utils.EnvironmentOptions{GatewayChannel: "standard"}
	if d.wire {
		opts.Ports = wirePorts // nothing else listens in the demo's namespace
	}
	env, err := utils.NewEnvironment(opts)
	if err != nil {
		return nil, err
	}
	d.env = env
	if _, err := env.Start(); err != nil {
		return nil, fmt.Errorf("start the control plane: %w", err)
	}
	user, err := env.AddUser(envtest.User{Name: "demo", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return nil, err
	}
	d.kubeconfig = filepath.Join(d.dir, "kubeconfig")
	if err := os.WriteFile(d.kubeconfig, kc, 0o600); err != nil {
		return nil, err
	}
	return user.Config(), nil
}

// installCRDs applies Rapport's CRDs, and the Gateway API standard CRDs when
// the cluster has no HTTPRoute, to an existing cluster.
func (d *demo) installCRDs(ctx context.Context) error {
	dirs := []string{filepath.Join(utils.RepoRoot(), "config", "crd", "bases")}
	if err := d.c.Get(ctx, types.NamespacedName{Name: "httproutes.gateway.networking.k8s.io"}, &apiextensionsv1.CustomResourceDefinition{}); apierrors.IsNotFound(err) {
		gw, err := utils.GatewayAPICRDDir("standard")
		if err != nil {
			return err
		}
		dirs = append(dirs, gw)
	}
	d.say("installing CRDs from %s", strings.Join(dirs, ", "))
	crds, err := envtest.InstallCRDs(restConfig(d.kubeconfig), envtest.CRDInstallOptions{Paths: dirs, ErrorIfPathMissing: true})
	if err != nil {
		return err
	}
	d.say("%d CRDs installed", len(crds))
	return nil
}

// assets is the folder of the control plane's binaries (kubectl among them).
func (d *demo) assets() string {
	dir, err := utils.AssetsDir()
	if err != nil {
		return ""
	}
	return dir
}

func restConfig(kubeconfig string) *rest.Config {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		panic(err)
	}
	return cfg
}

// freeAddr returns a loopback address outside the ephemeral range (see
// utils.FreeAddr): the simulated customers' connections cannot take it
// before the manager binds it.
func freeAddr() string {
	addr, err := utils.FreeAddr()
	if err != nil {
		panic(err)
	}
	return addr
}

// startManager runs the real manager binary against the control plane.
func (d *demo) startManager(ctx context.Context) error {
	collectorAddr, metricsAddr, probeAddr := wireCollector, wireMetrics, wireProbe
	if !d.wire {
		collectorAddr, metricsAddr, probeAddr = freeAddr(), freeAddr(), freeAddr()
	}
	d.collector = "http://" + collectorAddr
	var err error
	if d.mgrLog, err = os.Create(filepath.Join(d.dir, "manager.log")); err != nil {
		return err
	}
	d.mgrCmd = exec.Command(d.manager,
		"--collector-bind-address="+collectorAddr,
		"--metrics-bind-address="+metricsAddr, "--metrics-secure=false",
		"--health-probe-bind-address="+probeAddr)
	d.mgrCmd.Env = append(os.Environ(), "KUBECONFIG="+d.kubeconfig)
	d.mgrCmd.Stdout, d.mgrCmd.Stderr = d.mgrLog, d.mgrLog
	if err := d.mgrCmd.Start(); err != nil {
		return fmt.Errorf("start %s (run make build): %w", d.manager, err)
	}
	d.say("manager running (pid %d): collector %s, metrics http://%s/metrics, log %s", d.mgrCmd.Process.Pid, d.collector, metricsAddr, d.mgrLog.Name())
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + probeAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the manager did not become ready; see %s", d.mgrLog.Name())
		}
		time.Sleep(100 * time.Millisecond) // polling a process we started; no event to wait on
	}
}

// apply creates the objects of a manifest file whose kind passes keep, with
// server-side apply.
func (d *demo) apply(ctx context.Context, path string, keep func(kind string) bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("decode %s: %w", path, err)
		}
		if len(u.Object) == 0 || !keep(u.GetKind()) {
			continue
		}
		if err := d.c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("rapport-demo"), client.ForceOwnership); err != nil {
			return fmt.Errorf("apply %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
}

func (d *demo) experiment(ctx context.Context) (*cxv1.CXExperiment, error) {
	exp := &cxv1.CXExperiment{}
	err := d.c.Get(ctx, types.NamespacedName{Namespace: demoNS, Name: expName}, exp)
	return exp, err
}

// simulate runs the customers and the live view until the experiment ends.
func (d *demo) simulate(ctx context.Context) error {
	scenario, err := sim.LoadScenario(d.scenarioFile)
	if err != nil {
		return err
	}
	for {
		exp, err := d.experiment(ctx)
		if err == nil && exp.Status.Phase == cxv1.PhaseProgressing {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(100 * time.Millisecond) // waiting for the controller to start the experiment
	}
	if d.wire {
		if err := d.servePages(ctx); err != nil {
			return err
		}
	}
	d.realAnswers(ctx)
	secret := &corev1.Secret{}
	if err := d.c.Get(ctx, types.NamespacedName{Namespace: demoNS, Name: "feedback-token"}, secret); err != nil {
		return err
	}
	simCtx, stopSim := context.WithCancel(ctx)
	defer stopSim()
	simDone := make(chan sim.Stats, 1)
	token := strings.TrimSpace(string(secret.Data["token"]))
	if d.wire {
		d.say("shoppers (%s): HTTP requests through the proxy, %d at a time; %.0f%% answer the survey about the page they got; enterprise customers turn against the one-page checkout after their 150th answer",
			d.scenarioFile, shopperConcurrent, 100*surveyShare)
		exp, err := d.experiment(ctx)
		if err != nil {
			return err
		}
		go func() {
			stats, _ := d.shop(simCtx, exp, scenario, token)
			simDone <- stats
		}()
	} else {
		d.say("simulating customers (%s): %.0f answers/s; enterprise customers turn against the one-page checkout after their 150th answer", d.scenarioFile, scenario.Rate)
		go func() {
			stats, _ := sim.Run(simCtx, sim.Options{
				Client: d.c, Namespace: demoNS, Experiment: expName, CollectorURL: d.collector,
				Token: token, Scenario: scenario, Concurrency: 4,
			})
			simDone <- stats
		}()
	}

	view := newLiveView(d.out)
	ticker := time.NewTicker(500 * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
		exp, err := d.experiment(ctx)
		if err != nil {
			continue
		}
		extra := ""
		if d.onWire != nil {
			extra = d.onWire.view(exp)
		}
		view.show(exp, extra)
		if exp.Status.Phase.Terminal() {
			stopSim()
			stats := <-simDone
			view.done()
			d.story(exp, stats)
			d.report(ctx, exp)
			return nil
		}
	}
}

// story prints how the experiment ended, segment by segment.
func (d *demo) story(exp *cxv1.CXExperiment, stats sim.Stats) {
	fmt.Fprintln(d.out)
	d.say("%s ended: %s after %s", expName, exp.Status.Phase, exp.Status.CompletedAt.Sub(exp.Status.StartedAt.Time).Round(100*time.Millisecond))
	maxDrop := exp.Spec.Satisfaction.MaxDrop
	for _, seg := range exp.Status.Segments {
		control := seg.Variants[0]
		for _, v := range seg.Variants[1:] {
			switch v.State {
			case cxv1.StateRolledBack:
				line := fmt.Sprintf("%s: %s rolled back", seg.Name, v.Name)
				for _, rb := range exp.Status.Rollbacks {
					if rb.Segment == seg.Name && rb.Variant == v.Name {
						line = fmt.Sprintf("%s: %s rolled back after %d responses (CSAT %s vs %s, margin %s); %s",
							seg.Name, v.Name, rb.Responses, v.Score, control.Score, maxDrop, latency(rb))
					}
				}
				fmt.Fprintln(d.out, "   "+line)
			case cxv1.StatePromoted:
				fmt.Fprintf(d.out, "   %s: %s promoted (CSAT %s %s vs control %s %s, difference %s %s)\n",
					seg.Name, v.Name, v.Score, v.ScoreInterval, control.Score, control.ScoreInterval, v.Difference, v.DifferenceInterval)
			default:
				fmt.Fprintf(d.out, "   %s: %s %s (%s)\n", seg.Name, v.Name, v.State, v.Verdict)
			}
		}
	}
	d.notificationStory(exp)
	for _, line := range d.answered {
		fmt.Fprintln(d.out, "   "+line)
	}
	if d.onWire != nil {
		for _, line := range d.onWire.wireStory(exp) {
			fmt.Fprintln(d.out, "   "+line)
		}
		fmt.Fprintf(d.out, "   shoppers: %d survey answers posted in %s, %d accepted%s\n",
			stats.Sent, stats.Elapsed.Round(100*time.Millisecond), stats.Accepted, refusals(stats.Codes))
		return
	}
	fmt.Fprintf(d.out, "   customers simulated: %d answers posted, %d accepted (ack p50 %s, p99 %s)%s\n",
		stats.Sent, stats.Accepted, stats.Percentile(0.5).Round(time.Millisecond), stats.Percentile(0.99).Round(time.Millisecond), refusals(stats.Codes))
}

// notificationStory prints the notifications Rapport sent for the rollbacks.
func (d *demo) notificationStory(exp *cxv1.CXExperiment) {
	if d.notified == nil || len(exp.Status.Rollbacks) == 0 {
		return
	}
	got, rejected := d.notified.wait(len(exp.Status.Rollbacks), 15*time.Second)
	if len(got) == 0 {
		fmt.Fprintf(d.out, "   notification: none received within 15s (rejected: %d); see the manager's log\n", rejected)
		return
	}
	for _, n := range got {
		fmt.Fprintf(d.out, "   notification sent (%s, signed webhook, event %s): %s\n", n.Trigger, n.ID, n.Message)
	}
}

func latency(rb cxv1.Rollback) string {
	if rb.DecisiveResponseAt == nil || rb.TrafficRestoredAt == nil {
		return "route restored"
	}
	return fmt.Sprintf("route restored %.2f s after the decisive response", rb.TrafficRestoredAt.Sub(rb.DecisiveResponseAt.Time).Seconds())
}

// cleanup stops everything the demo started.
func (d *demo) cleanup() {
	if d.notified != nil {
		d.notified.stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if d.existing && d.c != nil {
		d.say("deleting namespace %s (the manager restores routes first)", demoNS)
		_ = d.c.Delete(ctx, &corev1.Namespace{ObjectMeta: objectMeta(demoNS)})
		for ctx.Err() == nil {
			if err := d.c.Get(ctx, types.NamespacedName{Name: demoNS}, &corev1.Namespace{}); apierrors.IsNotFound(err) {
				break
			}
			time.Sleep(250 * time.Millisecond) // waiting for namespace termination
		}
	}
	if d.mgrCmd != nil && d.mgrCmd.Process != nil {
		_ = d.mgrCmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = d.mgrCmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = d.mgrCmd.Process.Kill()
			<-done
		}
	}
	if d.mgrLog != nil {
		d.mgrLog.Close()
	}
	if d.onWire != nil {
		d.onWire.stop()
	}
	if d.env != nil {
		_ = d.env.Stop()
	}
	if d.dir != "" {
		_ = os.RemoveAll(d.dir)
	}
	d.say("stopped everything the demo started")
}

// liveView prints the experiment as it moves: redrawn in place on a
// terminal, a new block on each change otherwise.
type liveView struct {
	out   io.Writer
	tty   bool
	last  string
	lines int
}

func newLiveView(out io.Writer) *liveView {
	tty := false
	if f, ok := out.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &liveView{out: out, tty: tty}
}

func (v *liveView) show(exp *cxv1.CXExperiment, extra string) {
	text := render(exp) + extra
	if text == v.last {
		return
	}
	v.last = text
	if v.tty && v.lines > 0 {
		fmt.Fprintf(v.out, "\033[%dA\033[J", v.lines)
	}
	fmt.Fprint(v.out, text)
	v.lines = strings.Count(text, "\n")
}

func (v *liveView) done() {}

// render draws the experiment: step, weights and CSAT per segment and variant.
func render(exp *cxv1.CXExperiment) string {
	var b strings.Builder
	st := exp.Status
	fmt.Fprintf(&b, "%s  phase %-11s step %d/%d  (%s)\n", time.Now().Format("15:04:05"), st.Phase, st.CurrentStep, len(exp.Spec.Steps), st.Waiting)
	w := bufio.NewWriter(&b)
	for _, seg := range st.Segments {
		fmt.Fprintf(w, "  %-14s", seg.Name)
		for _, v := range seg.Variants {
			score := "   -"
			if v.Score != "" {
				score = v.Score
			}
			verdict := string(v.Verdict)
			if v.State != cxv1.StateActive && v.State != cxv1.StateControl {
				verdict = string(v.State)
			}
			fmt.Fprintf(w, " | %-8s %3d%%  n=%-5d CSAT %5s %-14s %s", v.Name, v.Weight, v.Responses, score, v.ScoreInterval, verdict)
		}
		fmt.Fprintln(w)
	}
	w.Flush()
	return b.String()
}

func objectMeta(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }

// refusals explains answers the collector did not accept, by status code.
func refusals(codes map[int]int64) string {
	why := map[int]string{
		http.StatusConflict:           "the experiment was no longer running",
		http.StatusTooManyRequests:    "rate-limited",
		http.StatusServiceUnavailable: "collector busy",
		0:                             "transport errors",
	}
	var parts []string
	for _, code := range slices.Sorted(maps.Keys(codes)) {
		if code == http.StatusAccepted || codes[code] == 0 {
			continue
		}
		reason := why[code]
		if reason == "" {
			reason = http.StatusText(code)
		}
		if code == 0 {
			parts = append(parts, fmt.Sprintf("%d not delivered (%s)", codes[code], reason))
			continue
		}
		parts = append(parts, fmt.Sprintf("%d refused with %d: %s", codes[code], code, reason))
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, ", ")
}
