package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/history"
	"github.com/rapport-dev/rapport/test/utils"
)

// browser starts Debian's Chromium headless for a test; without one the
// test is skipped with the reason, except in CI where that is a failure.
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	bin, err := utils.Chromium()
	if err != nil {
		if utils.InCI() {
			t.Fatalf("the dashboard's browser test needs Chromium in CI: %v", err)
		}
		t.Skipf("no browser (run hack/chromium-bin.sh): %v", err)
	}
	opts := append(utils.ChromiumOptions(bin, t.TempDir()), chromedp.WindowSize(width, height))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	return ctx
}

// screenshotDir is where the browser tests leave their screenshots: a
// fresh temporary directory, kept after the test (its path is logged).
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rapport-dashboard-screenshots-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

var dashboardURL = regexp.MustCompile(`at (http://127\.0\.0\.1:\d+/) `)

// startDashboard runs kubectl cx dashboard -n ns --port 0 with a kubeconfig
// and returns its URL; it is stopped (as by Ctrl-C) after the test.
func startDashboard(t *testing.T, kubeconfig, ns string) string {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- execute(ctx, nil, &out, &errOut, "--kubeconfig", kubeconfig, "dashboard", "-n", ns, "--port", "0")
	}()
	t.Cleanup(func() {
		stop()
		select {
		case code := <-done:
			if code != ExitOK {
				t.Errorf("dashboard exited %d on Ctrl-C; stderr:\n%s", code, errOut.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("the dashboard did not stop within 30s of Ctrl-C")
		}
	})
	g := NewWithT(t)
	g.Eventually(out.String, 30*time.Second, 20*time.Millisecond).Should(MatchRegexp(dashboardURL.String()), "stderr: %s", errOut.String())
	return dashboardURL.FindStringSubmatch(out.String())[1]
}

// viewerKubeconfig is a kubeconfig of a user who may read the experiments
// and events of ns but not patch them.
func viewerKubeconfig(t *testing.T, ns string) string {
	t.Helper()
	ctx := context.Background()
	user, err := testEnv.AddUser(envtest.User{Name: "viewer-" + ns}, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "cx-viewer", Namespace: ns}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{cxv1.GroupVersion.Group}, Resources: []string{"cxexperiments"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"list", "watch"}},
	}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "cx-viewer", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "cx-viewer"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "viewer-" + ns}}}
	for _, o := range []client.Object{role, binding} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// TestClusterDashboardInBrowser drives the dashboard in a real browser
// against a real API server: the list shows the experiment, its page has a
// row and a series per variant, "Pause" with its confirmation sets
// spec.paused and shows the API's answer, and a status written to the API
// appears in the open page without a reload.
func TestClusterDashboardInBrowser(t *testing.T) {
	cluster(t)
	tab := browser(t, 1200, 900)
	shots := screenshotDir(t)
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(30 * time.Second)
	g.SetDefaultEventuallyPollingInterval(50 * time.Millisecond)

	ns := newNamespace(t, "shop")
	exp := createExperiment(t, ns, "checkout-redesign", progressingStatus())
	recordEvent(t, exp, "Warning", "VariantRolledBack", "express rolled back in segment new-customers at step 1")

	base := startDashboard(t, kubeconfig, ns)

	do := func(actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(tab, time.Minute)
		defer cancel()
		if err := chromedp.Do(c, actions...); err != nil {
			t.Fatal(err)
		}
	}
	// liveAndUpdated: the page's stream is open and has replaced the
	// server-rendered content at least once.
	const liveAndUpdated = `document.getElementById('live-state').textContent === 'live' && +document.getElementById('live').dataset.updates > 0`
	// click clicks the element css finds with the mouse, as a customer
	// would. A live update replaces the page's content with a copy of it,
	// so the node found may be gone before the click lands: then it looks
	// for the element again, until the deadline.
	click := func(css string) {
		t.Helper()
		c, cancel := context.WithTimeout(tab, 30*time.Second)
		defer cancel()
		for {
			err := chromedp.Do(c, chromedp.Click(chromedp.CSS(css)))
			if err == nil {
				return
			}
			if !strings.Contains(err.Error(), "Could not find node with given id") || c.Err() != nil {
				t.Fatalf("click %s: %v", css, err)
			}
		}
	}
	until := func(js string) {
		t.Helper()
		c, cancel := context.WithTimeout(tab, 30*time.Second)
		defer cancel()
		if _, err := chromedp.Run(c, chromedp.Poll[bool](js, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
			t.Fatalf("waiting for %s: %v", js, err)
		}
	}
	eval := func(js string) string {
		t.Helper()
		c, cancel := context.WithTimeout(tab, 30*time.Second)
		defer cancel()
		v, err := chromedp.Run(c, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	shot := func(name string) {
		t.Helper()
		c, cancel := context.WithTimeout(tab, time.Minute)
		defer cancel()
		png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The list shows the experiment with its verdicts, and links to its page.
	do(chromedp.Navigate(base))
	row := `document.querySelector('tr[data-experiment="` + ns + `/checkout-redesign"]')`
	until(`!!` + row)
	g.Expect(eval(row + `.cells[2].textContent.trim()`)).To(HavePrefix("Progressing"))
	g.Expect(eval(row + `.querySelector('[data-segment="new-customers"]').textContent`)).To(Equal("new-customersone-page Inconclusiveexpress RolledBack"))
	until(liveAndUpdated)
	// The list is live too: an experiment created now appears without a reload.
	createExperiment(t, ns, "onboarding-tour", cxv1.CXExperimentStatus{})
	until(`!!document.querySelector('tr[data-experiment="` + ns + `/onboarding-tour"]')`)
	g.Expect(eval(`document.querySelector('tr[data-experiment="` + ns + `/onboarding-tour"]').cells[2].textContent.trim()`)).To(Equal("Pending"))
	shot("list.png")

	link := eval(row + `.querySelector('a').href`)
	g.Expect(link).To(Equal(base + "experiments/" + ns + "/checkout-redesign"))
	do(chromedp.Navigate(link))
	until(`!!document.getElementById('phase')`)
	until(liveAndUpdated)

	// One table row per variant, one chart series per non-control variant, in each segment.
	for _, seg := range []string{"enterprise", "new-customers"} {
		sel := `document.querySelector('section.segment[data-segment="` + seg + `"]')`
		g.Expect(eval(`Array.from(`+sel+`.querySelectorAll('tr[data-variant]')).map(r => r.dataset.variant).join(',')`)).To(Equal("control,one-page,express"), seg)
		g.Expect(eval(`Array.from(`+sel+`.querySelectorAll('svg.chart [data-series]')).map(s => s.dataset.series).join(',')`)).To(Equal("one-page,express"), seg)
		g.Expect(eval(sel+`.querySelector('svg.chart').getAttribute('aria-label')`)).To(ContainSubstring("against −3 points (max drop)"), seg)
	}
	g.Expect(eval(`document.querySelector('section.segment[data-segment="new-customers"] tr[data-variant="express"]').cells[1].textContent`)).To(Equal("RolledBack"))

	// A marker that a reload would lose: the updates below come without one.
	eval(`window.__noReload = 'still here'`)

	// Pause: the button asks first; Cancel does nothing.
	click(`button[data-action="pause"]`)
	until(`document.getElementById('confirm').open`)
	g.Expect(eval(`document.getElementById('confirm-text').textContent`)).To(HavePrefix("Pause " + ns + "/checkout-redesign?"))
	click("#confirm-cancel")
	until(`!document.getElementById('confirm').open`)
	g.Consistently(func() bool { return getExp(t, ns).Spec.Paused }, 300*time.Millisecond).Should(BeFalse(), "cancel paused the experiment")

	click(`button[data-action="pause"]`)
	until(`document.getElementById('confirm').open`)
	click("#confirm-ok")
	until(`document.getElementById('answer').className === 'ok'`)
	g.Expect(eval(`document.getElementById('answer').textContent`)).To(HavePrefix("paused " + ns + "/checkout-redesign (spec.paused: true)"))
	g.Expect(getExp(t, ns).Spec.Paused).To(BeTrue(), "spec.paused read back from the API server")
	// The change of spec comes back through the watch: Pause is now pointless, Resume is offered.
	until(`document.querySelector('button[data-action="pause"]').disabled && !document.querySelector('button[data-action="resume"]').disabled`)

	// Retry is refused in this phase: the button is disabled, with the reason.
	g.Expect(eval(`document.querySelector('button[data-action="retry"]').title`)).To(HavePrefix("Not now: it is Progressing"))

	// A status written to the API server appears without a reload.
	setStatus(t, ns, func(st *cxv1.CXExperimentStatus) {
		st.Phase = cxv1.PhasePaused
		st.Segments[0].Variants[1].Responses = 777
	})
	until(`document.getElementById('phase').textContent === 'Paused'`)
	g.Expect(eval(`document.querySelector('section.segment[data-segment="enterprise"] tr[data-variant="one-page"]').cells[3].textContent`)).To(Equal("777"))
	g.Expect(eval(`window.__noReload`)).To(Equal("still here"))
	shot("experiment.png")

	// The docs' picture: the viewport at 1200px wide, with the pause's answer.
	c, cancel := context.WithTimeout(tab, time.Minute)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.CaptureScreenshot())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(filepath.Join(shots, "dashboard.png"), png, 0o644)).To(Succeed())

	// A user without patch: the button's answer is the API server's 403, and nothing changes.
	viewer := startDashboard(t, viewerKubeconfig(t, ns), ns)
	do(chromedp.Navigate(viewer + "experiments/" + ns + "/onboarding-tour"))
	until(liveAndUpdated)
	click(`button[data-action="pause"]`)
	until(`document.getElementById('confirm').open`)
	click("#confirm-ok")
	until(`document.getElementById('answer').className === 'bad'`)
	g.Expect(eval(`document.getElementById('answer').textContent`)).To(And(ContainSubstring("forbidden"), ContainSubstring(`cannot patch resource "cxexperiments"`)))
	g.Expect(getExpNamed(t, ns, "onboarding-tour").Spec.Paused).To(BeFalse())
	shot("forbidden.png")
}

// getExpNamed reads an experiment of ns.
func getExpNamed(t *testing.T, ns, name string) *cxv1.CXExperiment {
	t.Helper()
	exp := &cxv1.CXExperiment{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, exp); err != nil {
		t.Fatal(err)
	}
	return exp
}

// TestClusterDashboardChartOverTime: with the run's history, the experiment
// page draws the report's chart over time in a real browser: one series per
// variant and the decision marked at the time status records it.
func TestClusterDashboardChartOverTime(t *testing.T) {
	cluster(t)
	tab := browser(t, 1200, 900)
	ns := newNamespace(t, "shop")
	exp := createExperiment(t, ns, "checkout-redesign", progressingStatus())
	rb := exp.Status.Rollbacks[0] // express in new-customers
	h := &history.History{Version: history.Version, Experiment: exp.Name, Run: exp.Status.Run}
	f := func(x float64) *float64 { return &x }
	start := rb.At.Add(-30 * time.Minute)
	for _, v := range []string{"one-page", "express"} {
		s := history.Series{Segment: "new-customers", Variant: v}
		for i := range 4 {
			d := -1.0
			verdict := cxv1.VerdictInconclusive
			if v == "express" && i == 3 {
				d, verdict = -9, cxv1.VerdictInferior
			}
			s.Points = append(s.Points, history.Point{At: start.Add(time.Duration(i) * 10 * time.Minute).UnixMilli(), Step: 1, Epoch: 1,
				Responses: int64(100 * (i + 1)), Score: f(85 + d), Difference: f(d), Lower: f(d - 4), Upper: f(d + 4), Verdict: verdict, Weight: 10})
		}
		h.Series = append(h.Series, s)
	}
	data, err := history.Encode(h)
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: history.ConfigMapName(exp.Name)},
		Data: map[string]string{history.RunKey: strconv.Itoa(int(exp.Status.Run))}, BinaryData: map[string][]byte{history.Key: data}}
	if err := k8s.Create(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
	base := startDashboard(t, kubeconfig, ns)
	c, cancel := context.WithTimeout(tab, time.Minute)
	defer cancel()
	svg := `document.querySelector('section.segment[data-segment="new-customers"] svg')`
	if _, err := chromedp.Run(c, chromedp.Navigate(base+"experiments/"+ns+"/checkout-redesign")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(c, chromedp.Poll[bool](`!!`+svg+` && !!`+svg+`.querySelector('desc')`, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		t.Fatalf("the chart over time: %v", err)
	}
	desc, err := chromedp.Run(c, chromedp.Evaluate[string](svg+`.querySelector('desc').textContent`))
	if err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(c, chromedp.Evaluate[string](svg+`.textContent`))
	if err != nil {
		t.Fatal(err)
	}
	want := "Decision marked: rollback of express at " + rb.At.UTC().Format("2006-01-02 15:04:05")
	if !strings.Contains(desc, want) {
		t.Errorf("the chart's description %q does not say %q", desc, want)
	}
	for _, v := range []string{"one-page", "express"} {
		if !strings.Contains(text, v+" (band: confidence sequence)") {
			t.Errorf("the chart has no series of %s: %q", v, text)
		}
	}
}
