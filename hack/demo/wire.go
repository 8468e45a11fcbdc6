package main

// Real customers: inside a private network namespace (test/utils/netns) the
// demo runs Traefik, a conformant Gateway API proxy, in front of two small
// variant backends and a storefront. Shoppers are HTTP requests through the
// proxy; the page they get says which variant served them, and a share of
// them answer the survey, posted to the collector API for the variant they
// really saw. The live view shows, per segment, the share each variant
// served on the wire next to the weights Rapport set, and the story ends
// with the rollback as customers saw it.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/sim"
	"github.com/rapport-dev/rapport/test/utils"
	"github.com/rapport-dev/rapport/test/utils/netns"
	"github.com/rapport-dev/rapport/test/utils/wire"
)

// Fixed addresses inside the private network namespace.
const (
	gatewayPort = "8000"
	wireListen  = netns.Host + ":" + gatewayPort // the Gateway's listener
	wirePing    = "127.0.0.1:8080"
	// wireCollector is an address of the namespace's public prefix: the
	// Gateway forwards browsers to it (an endpoint may not be loopback).
	wireCollector     = "192.0.2.20:8082"
	wireMetrics       = "127.0.0.1:8083"
	wireProbe         = "127.0.0.1:8081"
	shopHost          = "shop.example.com" // hack/demo/shop.yaml's route
	surveyShare       = 0.5                // shoppers who answer the survey
	shopperConcurrent = 16
	// wireWindow is how far back the live view counts requests.
	wireWindow = 2 * time.Second
)

// wirePorts are the control plane's fixed ports inside the namespace.
var wirePorts = &utils.ControlPlanePorts{APIServer: 6443, Etcd: 2379, EtcdPeer: 2380}

// The shop's backends: Service name -> address (a "pod" of netns.Prefix on
// the Service's targetPort 8080) and page.
var shopBackends = []struct{ service, addr, page string }{
	{"storefront", "192.0.2.10:8080", "the storefront"},
	{"checkout-v1", "192.0.2.11:8080", "today's checkout (three steps)"},
	{"checkout-v2", "192.0.2.12:8080", "the one-page checkout"},
}

// enterWire runs the demo again inside a private network namespace with real
// customers, and returns its exit code. It returns ok=false, having said
// why, when that is impossible here: the caller then runs today's demo with
// simulated customers.
func enterWire(out io.Writer) (code int, ok bool) {
	say := func(format string, args ...any) { fmt.Fprintf(out, "\033[1m==>\033[0m "+format+"\n", args...) }
	if err := netns.Available(); err != nil {
		say("real customers need a private network namespace, and this machine refuses one: %v", err)
		say("falling back to simulated customers, who post their answers straight to the collector")
		return 0, false
	}
	traefik := os.Getenv("TRAEFIK_BIN")
	if traefik == "" {
		say("building Traefik %s, the Gateway API proxy of the real customers, from the Go module proxy into ./bin (once; 6-15 min on 2 cores)", wire.TraefikVersion)
		cmd := exec.Command(filepath.Join(utils.RepoRoot(), "hack", "traefik-bin.sh"))
		cmd.Stderr = os.Stderr
		b, err := cmd.Output()
		if err != nil {
			say("could not build Traefik (%v); falling back to simulated customers", err)
			return 0, false
		}
		traefik = strings.TrimSpace(string(b))
	}
	code, err := netns.Reexec(os.Args[1:], "TRAEFIK_BIN="+traefik)
	if err != nil {
		say("%v; falling back to simulated customers", err)
		return 0, false
	}
	return code, true
}

// wireShop is the proxy, the backends and the shoppers' view of the wire.
type wireShop struct {
	proxy    *wire.Proxy
	backends []*wire.Backend
	client   *wire.Client
	// variantOf maps a Service to its variant in the experiment.
	variantOf map[string]string

	mu sync.Mutex
	// served: recent requests per segment ("" for no segment).
	served []servedRequest
	// lastOn is when each segment last saw each variant (sent time).
	lastOn map[string]map[string]time.Time
	// total counts each segment's requests by the variant that served them.
	total map[string]map[string]int64
}

type servedRequest struct {
	at               time.Time
	segment, variant string
}

// startWire starts the backends and the proxy, and has the Gateway the
// shop's route attaches to (hack/demo/shop.yaml: public-gateway in shop).
func (d *demo) startWire(ctx context.Context) error {
	w := &wireShop{client: wire.NewClient(wireListen, shopperConcurrent), lastOn: map[string]map[string]time.Time{}, total: map[string]map[string]int64{}}
	d.onWire = w
	for _, b := range shopBackends {
		srv, err := wire.StartBackend(b.service, b.addr, b.page)
		if err != nil {
			return err
		}
		w.backends = append(w.backends, srv)
	}
	var err error
	w.proxy, err = wire.StartProxy(ctx, wire.ProxyOptions{
		Kubeconfig: d.kubeconfig, Listen: wireListen, Ping: wirePing,
		// Traefik applies a route change at most every 2 s by default; see
		// docs/benchmarks.md (time to safety on the wire).
		ProvidersThrottle: "100ms",
		LogPath:           filepath.Join(d.dir, "traefik.log"),
	})
	if err != nil {
		return err
	}
	d.say("Traefik %s running: the shop's Gateway listens on http://%s (inside this demo's private network namespace), log %s", wire.TraefikVersion, wireListen, w.proxy.LogPath)
	return nil
}

// openShop publishes the backends' endpoints (no kubelet runs here), adds
// the Gateway, and waits until the proxy serves the shop.
func (d *demo) openShop(ctx context.Context) error {
	w := d.onWire
	for _, b := range shopBackends {
		host, port, _ := strings.Cut(b.addr, ":")
		p, err := strconv.ParseInt(port, 10, 32)
		if err != nil {
			return fmt.Errorf("backend address %s: %w", b.addr, err)
		}
		if err := wire.PublishEndpoints(ctx, d.c, demoNS, b.service, int32(p), host); err != nil {
			return err
		}
	}
	// The collector's browser paths (hack/demo/shop.yaml's route feedback).
	host, port, _ := strings.Cut(wireCollector, ":")
	p, err := strconv.ParseInt(port, 10, 32)
	if err != nil {
		return fmt.Errorf("collector address %s: %w", wireCollector, err)
	}
	if err := wire.PublishEndpoints(ctx, d.c, demoNS, "feedback", int32(p), host); err != nil {
		return err
	}
	gw := wire.Gateway{ClassName: "rapport-demo", ControllerName: wire.TraefikControllerName, Namespace: demoNS, Name: "public-gateway", Port: 8000}
	if _, err := gw.Install(ctx, d.c); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		r, err := w.client.Get(ctx, wire.Request{Host: shopHost, Path: "/checkout"}, nil)
		if err == nil && r.Backend == "checkout-v1" {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the proxy does not serve the shop's route (last: %v); see %s", err, w.proxy.LogPath)
		}
		time.Sleep(100 * time.Millisecond) // polling the proxy until it has loaded the route
	}
	d.say("the shop is open: GET http://%s/checkout (Host: %s) -> checkout-v1 through the proxy", wireListen, shopHost)
	return nil
}

func (w *wireShop) stop() {
	if w.proxy != nil {
		w.proxy.Stop()
	}
	for _, b := range w.backends {
		b.Close()
	}
}

// shopper is a kind of customer and how its requests are marked.
type shopper struct {
	segment string
	share   float64
	mark    func(*wire.Request)
}

// shoppers returns the demo's customers: the scenario's segments, marked as
// hack/demo/shop.yaml's CustomerSegments recognise them, and everyone else.
func shoppers(scenario *sim.Scenario) []shopper {
	marks := map[string]func(*wire.Request){
		"enterprise":    func(r *wire.Request) { r.Header = map[string]string{"x-customer-tier": "enterprise"} },
		"new-customers": func(r *wire.Request) { r.Cookies = map[string]string{"session": "s1", "lifecycle": "new"} },
	}
	var out []shopper
	var total float64
	for _, name := range slices.Sorted(maps.Keys(scenario.Segments)) {
		total += scenario.Segments[name].Share
		if m, ok := marks[name]; ok {
			out = append(out, shopper{segment: name, share: scenario.Segments[name].Share, mark: m})
		}
	}
	// Everyone else: a fifth of the traffic, never in the experiment.
	out = append(out, shopper{segment: "", share: total / 4, mark: func(r *wire.Request) {
		r.Header = map[string]string{"x-customer-tier": "smb"}
	}})
	return out
}

// shop runs shoppers through the proxy until ctx ends: each asks for the
// checkout page; a share answers the survey about the variant that served
// it, in batches posted to the collector.
func (d *demo) shop(ctx context.Context, exp *cxv1.CXExperiment, scenario *sim.Scenario, token string) (sim.Stats, error) {
	w := d.onWire
	w.variantOf = variantsByService(exp)
	scale, control, err := sim.ScaleOf(exp)
	if err != nil {
		return sim.Stats{}, err
	}
	kinds := shoppers(scenario)
	// The experiment runs: wait until the proxy has its child route (a
	// segment's customer reaches the variant), so the view starts clean.
	deadline := time.Now().Add(30 * time.Second)
	for routed := false; !routed && time.Now().Before(deadline) && ctx.Err() == nil; {
		r := wire.Request{Host: shopHost, Path: "/checkout"}
		kinds[0].mark(&r)
		for range 10 {
			if reply, err := w.client.Get(ctx, r, nil); err == nil && reply.Backend != "checkout-v1" {
				routed = true
			}
		}
	}
	var sum float64
	for _, k := range kinds {
		sum += k.share
	}
	var mu sync.Mutex // guards drawer, rnd, batch, stats
	drawer := sim.NewDrawer(scenario, scale, control)
	rnd := rand.New(rand.NewPCG(scenario.Seed, 7))
	stats := sim.Stats{Codes: map[int]int64{}}
	var batch []sim.Answer
	var posts sync.WaitGroup
	send := func(b []sim.Answer) {
		posts.Go(func() {
			code := postAnswers(ctx, d.collector, exp.Name, token, b)
			mu.Lock()
			stats.Batches++
			stats.Sent += int64(len(b))
			stats.Codes[code] += int64(len(b))
			if code == http.StatusAccepted {
				stats.Accepted += int64(len(b))
			}
			mu.Unlock()
		})
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range shopperConcurrent {
		wg.Go(func() {
			for ctx.Err() == nil {
				mu.Lock()
				x := rnd.Float64() * sum
				answers := rnd.Float64() < surveyShare
				mu.Unlock()
				k := kinds[len(kinds)-1]
				for _, c := range kinds {
					if x -= c.share; x < 0 {
						k = c
						break
					}
				}
				r := wire.Request{Host: shopHost, Path: "/checkout"}
				k.mark(&r)
				sent := time.Now()
				reply, err := w.client.Get(ctx, r, nil)
				if err != nil {
					continue
				}
				variant := w.variantOf[reply.Backend]
				w.record(sent, k.segment, variant)
				if k.segment == "" || !answers {
					continue
				}
				mu.Lock()
				batch = append(batch, sim.Answer{Segment: k.segment, Variant: variant, Score: drawer.Score(k.segment, variant), At: sent})
				var full []sim.Answer
				if len(batch) >= scenario.Batch {
					full, batch = batch, nil
				}
				mu.Unlock()
				if full != nil {
					send(full)
				}
			}
		})
	}
	wg.Wait()
	posts.Wait()
	stats.Elapsed = time.Since(start)
	return stats, nil
}

func (w *wireShop) record(at time.Time, segment, variant string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.served = append(w.served, servedRequest{at: at, segment: segment, variant: variant})
	if w.lastOn[segment] == nil {
		w.lastOn[segment] = map[string]time.Time{}
	}
	if at.After(w.lastOn[segment][variant]) {
		w.lastOn[segment][variant] = at
	}
	if w.total[segment] == nil {
		w.total[segment] = map[string]int64{}
	}
	w.total[segment][variant]++
	// Keep the window only.
	cut := 0
	for cut < len(w.served) && time.Since(w.served[cut].at) > wireWindow {
		cut++
	}
	w.served = w.served[cut:]
}

// view renders the share each variant served per segment over the last
// wireWindow, next to the weights in status.
func (w *wireShop) view(exp *cxv1.CXExperiment) string {
	w.mu.Lock()
	counts := map[string]map[string]int{}
	for _, s := range w.served {
		if counts[s.segment] == nil {
			counts[s.segment] = map[string]int{}
		}
		counts[s.segment][s.variant]++
	}
	w.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "  on the wire, last %s (requests through the proxy; weight set by Rapport in brackets):\n", wireWindow)
	line := func(name string, c map[string]int, weight func(string) int32) {
		n := 0
		for _, k := range c {
			n += k
		}
		fmt.Fprintf(&b, "  %-14s", name)
		for _, v := range exp.Spec.Variants {
			share := 0.0
			if n > 0 {
				share = 100 * float64(c[v.Name]) / float64(n)
			}
			if weight != nil {
				fmt.Fprintf(&b, " | %-8s %5.1f%% (%3d%%)", v.Name, share, weight(v.Name))
			} else {
				fmt.Fprintf(&b, " | %-8s %5.1f%%       ", v.Name, share)
			}
		}
		fmt.Fprintf(&b, "  %4d req/s\n", int(float64(n)/wireWindow.Seconds()))
	}
	for _, seg := range exp.Status.Segments {
		line(seg.Name, counts[seg.Name], func(v string) int32 {
			for _, vs := range seg.Variants {
				if vs.Name == v {
					return vs.Weight
				}
			}
			return 0
		})
	}
	line("everyone else", counts[""], func(v string) int32 {
		if v == exp.Spec.ControlVariant().Name {
			return 100
		}
		return 0
	})
	return b.String()
}

// wireStory tells each rollback as the customers saw it: the last request
// of the segment the proxy sent to the rolled-back variant, after the
// decisive response.
func (w *wireShop) wireStory(exp *cxv1.CXExperiment) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var lines []string
	for _, rb := range exp.Status.Rollbacks {
		if rb.DecisiveResponseAt == nil {
			continue
		}
		last := w.lastOn[rb.Segment][rb.Variant]
		after := last.Sub(rb.DecisiveResponseAt.Time)
		if after < 0 {
			lines = append(lines, fmt.Sprintf("%s: on the wire, no request went to %s after the decisive response", rb.Segment, rb.Variant))
			continue
		}
		lines = append(lines, fmt.Sprintf("%s: on the wire, the last request sent to %s left %.2f s after the decisive response; no later request of the segment reached it (the rest went to %s)",
			rb.Segment, rb.Variant, after.Seconds(), exp.Spec.ControlVariant().Name))
	}
	count := func(seg string) string {
		parts := make([]string, 0, len(exp.Spec.Variants))
		for _, v := range exp.Spec.Variants {
			parts = append(parts, fmt.Sprintf("%d to %s", w.total[seg][v.Name], v.Name))
		}
		return strings.Join(parts, ", ")
	}
	for _, seg := range slices.Sorted(maps.Keys(w.total)) {
		if seg != "" {
			lines = append(lines, fmt.Sprintf("%s: requests through the proxy: %s", seg, count(seg)))
		}
	}
	lines = append(lines, fmt.Sprintf("everyone else (in no segment): requests through the proxy: %s", count("")))
	return lines
}

// postAnswers posts a batch to the collector and returns the HTTP status (0
// for a transport error).
func postAnswers(ctx context.Context, collector, experiment, token string, batch []sim.Answer) int {
	body := sim.Body(batch, "demo-shop") // with each shopper's serving time as at
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost,
		fmt.Sprintf("%s/v1/namespaces/%s/experiments/%s/responses", collector, demoNS, experiment), bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
