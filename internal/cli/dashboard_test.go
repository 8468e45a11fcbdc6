package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

func TestCheckAddress(t *testing.T) {
	for _, tc := range []struct {
		address  string
		explicit bool
		warn     bool
		err      string
	}{
		{address: "127.0.0.1"},
		{address: "127.0.0.1", explicit: true},
		{address: "localhost", explicit: true},
		{address: "::1", explicit: true},
		{address: "0.0.0.0", err: "not a loopback address, unless --address is given explicitly"},
		{address: "0.0.0.0", explicit: true, warn: true},
		{address: "192.168.1.10", explicit: true, warn: true},
		{address: "", explicit: true, err: "--address must not be empty"},
	} {
		t.Run(tc.address, func(t *testing.T) {
			warning, err := checkAddress(tc.address, tc.explicit)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || ExitCode(err) != ExitUsage {
					t.Fatalf("err %v, want usage error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (warning != "") != tc.warn {
				t.Errorf("warning %q, want one: %v", warning, tc.warn)
			}
		})
	}
}

func TestDashboardUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"dashboard", "--port", "70000"}, ExitUsage, "--port must be between 0 (any free port) and 65535, got 70000"},
		{[]string{"dashboard", "--address", ""}, ExitUsage, "--address must not be empty"},
		{[]string{"dashboard", "shop"}, ExitUsage, `"kubectl cx dashboard" takes no arguments`},
		// A non-loopback address given explicitly: a warning, then the run goes on (here to a kubeconfig that does not exist).
		{[]string{"dashboard", "--address", "0.0.0.0", "--kubeconfig", "/nonexistent/kubeconfig"}, ExitError, "Warning: listening on 0.0.0.0, which is not a loopback address"},
	} {
		r := runCLI(t, tc.args...).expect(t, tc.code)
		if !strings.Contains(r.err, tc.err) {
			t.Errorf("%v: stderr %q lacks %q", tc.args, r.err, tc.err)
		}
	}
}

func TestHostAllowed(t *testing.T) {
	for _, tc := range []struct {
		host, address string
		want          bool
	}{
		{"127.0.0.1:3100", "127.0.0.1", true},
		{"localhost:3100", "127.0.0.1", true},
		{"[::1]:3100", "127.0.0.1", true},
		{"LOCALHOST", "127.0.0.1", true},
		{"evil.example:3100", "127.0.0.1", false}, // DNS rebinding
		{"", "127.0.0.1", false},
		{"192.168.1.10:3100", "192.168.1.10", true},
		{"evil.example:3100", "192.168.1.10", false},
		{"dev-box:3100", "0.0.0.0", true},
		{"dev-box:3100", "::", true},
	} {
		if got := hostAllowed(tc.host, tc.address); got != tc.want {
			t.Errorf("hostAllowed(%q, %q) = %v, want %v", tc.host, tc.address, got, tc.want)
		}
	}
}

func TestActionButtons(t *testing.T) {
	withPhase := func(p cxv1.ExperimentPhase, paused bool) *cxv1.CXExperiment {
		e := newExperiment("shop", "checkout-redesign")
		e.Status.Phase, e.Spec.Paused = p, paused
		return e
	}
	for _, tc := range []struct {
		name    string
		exp     *cxv1.CXExperiment
		enabled string // the enabled actions, in order
	}{
		{"pending", withPhase("", false), "pause abort"},
		{"progressing", withPhase(cxv1.PhaseProgressing, false), "pause promote abort"},
		{"paused", withPhase(cxv1.PhasePaused, true), "resume promote abort"},
		{"rolled back", withPhase(cxv1.PhaseRolledBack, false), "retry"},
		{"failed", withPhase(cxv1.PhaseFailed, false), "retry"},
		{"succeeded", withPhase(cxv1.PhaseSucceeded, false), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var enabled []string
			for _, b := range actionButtons(tc.exp) {
				if b.Disabled {
					if b.Why == "" {
						t.Errorf("%s is disabled without a reason", b.Name)
					}
					continue
				}
				enabled = append(enabled, b.Name)
				if !strings.Contains(b.Confirm, "shop/checkout-redesign") {
					t.Errorf("%s asks %q, which does not name the experiment", b.Name, b.Confirm)
				}
			}
			if got := strings.Join(enabled, " "); got != tc.enabled {
				t.Errorf("enabled %q, want %q", got, tc.enabled)
			}
		})
	}
}

func TestSegmentBadges(t *testing.T) {
	for _, tc := range []struct {
		name string
		vs   cxv1.VariantStatus
		text string
		tone string
	}{
		{"no verdict yet", cxv1.VariantStatus{State: cxv1.StateActive}, "-", ""},
		{"non-inferior", cxv1.VariantStatus{State: cxv1.StateActive, Verdict: cxv1.VerdictNonInferior}, "NonInferior", "ok"},
		{"inconclusive", cxv1.VariantStatus{State: cxv1.StateActive, Verdict: cxv1.VerdictInconclusive}, "Inconclusive", "warn"},
		{"insufficient data", cxv1.VariantStatus{State: cxv1.StateActive, Verdict: cxv1.VerdictInsufficientData}, "InsufficientData", "dim"},
		{"rolled back: the state says more than the verdict", cxv1.VariantStatus{State: cxv1.StateRolledBack, Verdict: cxv1.VerdictInferior}, "RolledBack", "bad"},
		{"promoted", cxv1.VariantStatus{State: cxv1.StatePromoted, Verdict: cxv1.VerdictNonInferior}, "Promoted", "ok"},
		{"retired", cxv1.VariantStatus{State: cxv1.StateRetired, Verdict: cxv1.VerdictNonInferior}, "Retired", "dim"},
	} {
		if text, tone := badgeText(tc.vs), badgeTone(tc.vs); text != tc.text || tone != tc.tone {
			t.Errorf("%s: %q %q, want %q %q", tc.name, text, tone, tc.text, tc.tone)
		}
	}
	e := newExperiment("shop", "x")
	if b := segmentBadges(e); len(b) != 2 || b[0].Name != "enterprise" || len(b[0].Variants) != 0 {
		t.Errorf("before any measurement: %+v, want the spec's segments without variants", b)
	}
	e.Status = progressingStatus()
	if b := segmentBadges(e); len(b) != 2 || len(b[1].Variants) != 2 || b[1].Variants[1] != (variantBadge{Name: "express", Verdict: "RolledBack", Tone: "bad"}) {
		t.Errorf("progressing: %+v", b)
	}
}

func TestChartTicks(t *testing.T) {
	for _, tc := range []struct {
		lo, hi float64
		want   string
	}{
		{-17.8, 5.9, "[-15 -10 -5 0 5]"},
		{-3.2, 0.2, "[-3 -2 -1 0]"},
		{-0.6, 0.6, "[-0.5 0 0.5]"},
		{1, 1, "[]"},
	} {
		if got := strings.ReplaceAll(strings.TrimSpace(fmtFloats(chartTicks(tc.lo, tc.hi))), "  ", " "); got != tc.want {
			t.Errorf("chartTicks(%v, %v) = %s, want %s", tc.lo, tc.hi, got, tc.want)
		}
	}
}

func fmtFloats(f []float64) string {
	s := make([]string, len(f))
	for i, v := range f {
		s[i] = points(v)
	}
	return "[" + strings.Join(s, " ") + "]"
}

func TestLayoutChart(t *testing.T) {
	st := progressingStatus()
	l := layoutChart(st.Segments[1], 3) // new-customers: one-page inconclusive, express rolled back
	if len(l.Series) != 2 || l.Series[0].Name != "one-page" || l.Series[1].Name != "express" {
		t.Fatalf("series %+v, want one-page and express (not the control)", l.Series)
	}
	if !(l.Drop.X < l.Zero.X) {
		t.Errorf("-max drop at %v is not left of 0 at %v", l.Drop.X, l.Zero.X)
	}
	for _, s := range l.Series {
		if !(s.X1 <= s.X && s.X <= s.X2) || s.X1 < chartLeft || s.X2 > chartWidth-chartRight {
			t.Errorf("%s: point %v outside its interval [%v, %v] or the plot", s.Name, s.X, s.X1, s.X2)
		}
	}
	express := l.Series[1]
	if !(express.X2 < l.Drop.X) || express.Tone != "bad" {
		t.Errorf("express's interval [-16.8, -7.0] ends at %v, not left of -3 at %v, or tone %q is not bad", express.X2, l.Drop.X, express.Tone)
	}
	for _, want := range []string{"segment new-customers", "one-page -0.7 [-4.6, 3.2], Inconclusive;", "express -11.9 [-16.8, -7.0], RolledBack;"} {
		if !strings.Contains(l.Label, want) {
			t.Errorf("text alternative %q lacks %q", l.Label, want)
		}
	}
	// A variant without a difference yet is a series with a note, not a point at 0.
	seg := cxv1.SegmentStatus{Name: "s", Variants: []cxv1.VariantStatus{{Name: "control", State: cxv1.StateControl}, {Name: "b", State: cxv1.StateActive}}}
	if l := layoutChart(seg, 2.5); len(l.Series) != 1 || !l.Series[0].Missing {
		t.Errorf("series %+v, want one missing", l.Series)
	}
	svg := string(segmentChart(st.Segments[1], 3))
	if strings.Count(svg, `data-series=`) != 2 || !strings.Contains(svg, `role="img"`) || !strings.Contains(svg, "<title>") {
		t.Errorf("chart:\n%s", svg)
	}
}

func TestFormatSSE(t *testing.T) {
	if got, want := formatSSE("", "<p>a</p>\n<p>b</p>"), "data: <p>a</p>\ndata: <p>b</p>\n\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := formatSSE("gone", "deleted"), "event: gone\ndata: deleted\n\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestHTTPStatus(t *testing.T) {
	gr := schema.GroupResource{Group: "cx.rapport.dev", Resource: "cxexperiments"}
	for _, tc := range []struct {
		err  error
		want int
	}{
		{apierrors.NewForbidden(gr, "x", io.EOF), http.StatusForbidden},
		{experimentError(apierrors.NewNotFound(gr, "x"), "shop", "x"), http.StatusNotFound},
		{refusedErrorf("refusing to pause"), http.StatusConflict},
		{io.EOF, http.StatusInternalServerError},
	} {
		if got := httpStatus(tc.err); got != tc.want {
			t.Errorf("httpStatus(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// fakeDashboard serves the dashboard over a fake client holding the
// progressing fixture in namespace shop (pure rendering and handler logic;
// the browser test runs against a real API server).
func fakeDashboard(t *testing.T, namespace string, wrap func(client.WithWatch) client.WithWatch) (*httptest.Server, *dashboard, client.WithWatch, *bytes.Buffer) {
	t.Helper()
	exp := newExperiment("shop", "checkout-redesign")
	exp.Status = progressingStatus()
	evs := progressingEvents()
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(exp, &evs[0], &evs[1], &evs[2]).WithStatusSubresource(exp).
		WithIndex(&eventsv1.Event{}, "regarding.name", func(o client.Object) []string { return []string{o.(*eventsv1.Event).Regarding.Name} }).
		WithIndex(&eventsv1.Event{}, "regarding.kind", func(o client.Object) []string { return []string{o.(*eventsv1.Event).Regarding.Kind} }).
		Build()
	if wrap == nil {
		wrap = func(c client.WithWatch) client.WithWatch { return c }
	}
	wc := wrap(c)
	var errOut bytes.Buffer
	o := NewOptions(genericiooptions.IOStreams{Out: io.Discard, ErrOut: &errOut})
	o.Now = func() time.Time { return fixedNow }
	d, err := newDashboard(o, wc, namespace, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.routes())
	t.Cleanup(srv.Close)
	return srv, d, c, &errOut
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestDashboardPages(t *testing.T) {
	srv, d, _, _ := fakeDashboard(t, "", nil)

	code, body := httpGet(t, srv.URL+"/")
	if code != http.StatusOK || !strings.Contains(body, `data-experiment="shop/checkout-redesign"`) ||
		!strings.Contains(body, `<span class="badge bad">express RolledBack</span>`) || !strings.Contains(body, `<span class="badge ok">one-page NonInferior</span>`) ||
		!strings.Contains(body, `<meta name="csrf-token" content="`+d.csrf+`">`) {
		t.Errorf("list: %d\n%s", code, body)
	}
	if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Errorf("the list refers to an external resource:\n%s", body)
	}

	code, body = httpGet(t, srv.URL+"/experiments/shop/checkout-redesign")
	for _, want := range []string{
		"One-page checkout keeps customers as satisfied with fewer steps",
		`<tr data-variant="express"><td>express<div class="msg">CSAT 74.1`,
		`data-series="one-page"`, "max drop 3 points",
		"Step 2/3 [██████░░░░] 25%",
		`data-action="pause"`, `data-action="retry" data-confirm="Retry shop/checkout-redesign? Start a new run of a RolledBack or Failed experiment." title="Not now: it is Progressing`,
		"express rolled back in segment new-customers at step 1",
		"PartialRollback", "run 1 started: step 1/3 sends 5%",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("experiment page lacks %q", want)
		}
	}
	if code != http.StatusOK || strings.Count(body, "<tr data-variant=") != 6 || strings.Count(body, "data-series=") != 4 {
		t.Errorf("experiment page: %d, %d rows, %d series\n%s", code, strings.Count(body, "<tr data-variant="), strings.Count(body, "data-series="), body)
	}

	if code, body := httpGet(t, srv.URL+"/experiments/shop/nope"); code != http.StatusNotFound || !strings.Contains(body, `cxexperiment &#34;nope&#34; not found in namespace &#34;shop&#34;`) {
		t.Errorf("missing experiment: %d\n%s", code, body)
	}
	msgs := sseMessages(t, context.Background(), srv.URL+"/experiments/shop/nope/live")
	select {
	case m := <-msgs:
		if m != `event: gone
cxexperiment "nope" not found in namespace "shop"` {
			t.Errorf("live page of a missing experiment: %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Error("the live page of a missing experiment says nothing")
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	req.Host = "rebound.example:3100"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host: %d, want 421", resp.StatusCode)
	}

	scoped, _, _, _ := fakeDashboard(t, "bank", nil)
	if code, body := httpGet(t, scoped.URL+"/experiments/shop/checkout-redesign"); code != http.StatusNotFound || !strings.Contains(body, "start it with -A or -n shop") {
		t.Errorf("out of scope: %d\n%s", code, body)
	}
	if code, body := httpGet(t, scoped.URL+"/"); code != http.StatusOK || !strings.Contains(body, "No experiments found in namespace bank") {
		t.Errorf("empty list: %d\n%s", code, body)
	}
}

func post(t *testing.T, url, token string) (int, actionReply) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-CSRF-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var rep actionReply
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, rep
}

func TestDashboardActions(t *testing.T) {
	srv, d, c, errOut := fakeDashboard(t, "", nil)
	url := srv.URL + "/experiments/shop/checkout-redesign/actions/"
	paused := func() bool {
		exp := &cxv1.CXExperiment{}
		if err := c.Get(context.Background(), types.NamespacedName{Namespace: "shop", Name: "checkout-redesign"}, exp); err != nil {
			t.Fatal(err)
		}
		return exp.Spec.Paused
	}

	if code, rep := post(t, url+"pause", ""); code != http.StatusForbidden || rep.OK || paused() {
		t.Errorf("without the token: %d %+v (paused: %v)", code, rep, paused())
	}
	if code, rep := post(t, url+"pause", strings.Repeat("0", len(d.csrf))); code != http.StatusForbidden || paused() {
		t.Errorf("with a wrong token: %d %+v", code, rep)
	}
	code, rep := post(t, url+"pause", d.csrf)
	if code != http.StatusOK || !rep.OK || !strings.HasPrefix(rep.Message, "paused shop/checkout-redesign (spec.paused: true)") || !paused() {
		t.Errorf("pause: %d %+v (paused: %v)", code, rep, paused())
	}
	if code, rep := post(t, url+"pause", d.csrf); code != http.StatusOK || rep.Message != "shop/checkout-redesign is already paused (spec.paused: true); nothing to do" {
		t.Errorf("pause again: %d %+v", code, rep)
	}
	if code, rep := post(t, url+"retry", d.csrf); code != http.StatusConflict || rep.OK || !strings.Contains(rep.Message, "refusing to retry shop/checkout-redesign: it is Progressing") {
		t.Errorf("retry: %d %+v", code, rep)
	}
	if code, rep := post(t, url+"explode", d.csrf); code != http.StatusNotFound || !strings.Contains(rep.Message, `unknown action "explode"`) {
		t.Errorf("unknown action: %d %+v", code, rep)
	}
	if code, rep := post(t, srv.URL+"/experiments/shop/nope/actions/pause", d.csrf); code != http.StatusNotFound || !strings.Contains(rep.Message, "not found") {
		t.Errorf("missing experiment: %d %+v", code, rep)
	}
	if !strings.Contains(errOut.String(), "pause shop/checkout-redesign: paused shop/checkout-redesign") {
		t.Errorf("the dashboard does not log its actions:\n%s", errOut.String())
	}
}

// restartingWatches hands out the experiment watches as fake watchers the
// test controls, so that it can end one as the API server does.
type restartingWatches struct {
	client.WithWatch
	watches chan *watch.FakeWatcher
}

func (c *restartingWatches) Watch(ctx context.Context, list client.ObjectList, opts ...client.ListOption) (watch.Interface, error) {
	if _, isExp := list.(*cxv1.CXExperimentList); !isExp {
		return c.WithWatch.Watch(ctx, list, opts...)
	}
	w := watch.NewFake()
	c.watches <- w
	return w, nil
}

// sseMessages reads the data of each event of a stream onto a channel.
func sseMessages(t *testing.T, ctx context.Context, url string) <-chan string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("live: %d %s", resp.StatusCode, ct)
	}
	out := make(chan string, 16)
	go func() {
		defer func() { _ = resp.Body.Close() }()
		defer close(out)
		r := bufio.NewReader(resp.Body)
		var data []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				out <- strings.Join(data, "\n")
				data = nil
			case strings.HasPrefix(line, "data: "):
				data = append(data, strings.TrimPrefix(line, "data: "))
			case strings.HasPrefix(line, "event: "):
				data = append(data, line)
			}
		}
	}()
	return out
}

func TestDashboardLiveSurvivesWatchRestart(t *testing.T) {
	g := NewWithT(t)
	var rw *restartingWatches
	srv, _, c, _ := fakeDashboard(t, "", func(c client.WithWatch) client.WithWatch {
		rw = &restartingWatches{WithWatch: c, watches: make(chan *watch.FakeWatcher, 4)}
		return rw
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs := sseMessages(t, ctx, srv.URL+"/experiments/shop/checkout-redesign/live")

	var first string
	g.Eventually(msgs, 10*time.Second).Should(Receive(&first))
	g.Expect(first).To(ContainSubstring(`<span class="info" id="phase">Progressing</span>`))
	var w1 *watch.FakeWatcher
	g.Eventually(rw.watches, 10*time.Second).Should(Receive(&w1))

	w1.Stop() // the API server ends the watch
	var w2 *watch.FakeWatcher
	g.Eventually(rw.watches, 10*time.Second).Should(Receive(&w2), "the watch is started again")

	exp := &cxv1.CXExperiment{}
	g.Expect(c.Get(ctx, types.NamespacedName{Namespace: "shop", Name: "checkout-redesign"}, exp)).To(Succeed())
	exp.Status.Phase = cxv1.PhasePaused
	w2.Modify(exp)
	var next string
	g.Eventually(msgs, 10*time.Second).Should(Receive(&next))
	g.Expect(next).To(ContainSubstring(`<span class="warn" id="phase">Paused</span>`))

	w2.Delete(exp)
	g.Eventually(msgs, 10*time.Second).Should(Receive(Equal("event: gone\ncxexperiment shop/checkout-redesign was deleted")))
}

// forbiddenList answers every list of experiments with RBAC's 403.
type forbiddenList struct{ client.WithWatch }

func (c forbiddenList) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if _, isExp := list.(*cxv1.CXExperimentList); isExp {
		return apierrors.NewForbidden(schema.GroupResource{Group: "cx.rapport.dev", Resource: "cxexperiments"}, "", io.EOF)
	}
	return c.WithWatch.List(ctx, list, opts...)
}

func TestDashboardForbidden(t *testing.T) {
	srv, _, _, _ := fakeDashboard(t, "shop", func(c client.WithWatch) client.WithWatch { return forbiddenList{c} })
	if code, body := httpGet(t, srv.URL+"/"); code != http.StatusForbidden || !strings.Contains(body, "cxexperiments.cx.rapport.dev is forbidden") {
		t.Errorf("list: %d\n%s", code, body)
	}
	// The live list says why, and asks the browser to retry later.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/live", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "retry: 10000\nevent: failure\ndata: cxexperiments.cx.rapport.dev is forbidden") {
		t.Errorf("live list: %q", b)
	}
}
