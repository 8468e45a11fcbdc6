package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/history"
	"github.com/rapport-dev/rapport/test/utils"
)

// The envtest control plane (a real kube-apiserver and etcd with Rapport's
// CRDs) is started once, by the first test that needs it, and stopped by
// TestMain. No controller runs: tests write status through the status
// subresource themselves.
var (
	clusterOnce sync.Once
	clusterErr  error
	testEnv     *envtest.Environment
	kubeconfig  string // path of a kubeconfig for the envtest server
	k8s         client.Client
	tmpDir      string
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if testEnv != nil {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping envtest: %v\n", err)
		}
	}
	if tmpDir != "" {
		_ = os.RemoveAll(tmpDir)
	}
	os.Exit(code)
}

func startCluster() {
	env, err := utils.NewEnvironment(utils.EnvironmentOptions{})
	if err != nil {
		clusterErr = err
		return
	}
	cfg, err := env.Start()
	if err != nil {
		clusterErr = fmt.Errorf("start envtest: %w", err)
		return
	}
	testEnv = env
	// A kubeconfig for a user of the envtest server, as a real user has one.
	user, err := env.AddUser(envtest.User{Name: "kubectl-cx-tester", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		clusterErr = fmt.Errorf("add envtest user: %w", err)
		return
	}
	data, err := user.KubeConfig()
	if err != nil {
		clusterErr = err
		return
	}
	if tmpDir, err = os.MkdirTemp("", "kubectl-cx-test-"); err != nil {
		clusterErr = err
		return
	}
	kubeconfig = filepath.Join(tmpDir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, data, 0o600); err != nil {
		clusterErr = err
		return
	}
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = cxv1.AddToScheme(s)
	k8s, clusterErr = client.New(cfg, client.Options{Scheme: s})
}

// cluster starts the control plane once; without one the test is skipped,
// except in CI where that is a failure.
func cluster(t *testing.T) {
	t.Helper()
	clusterOnce.Do(startCluster)
	if clusterErr != nil {
		if utils.InCI() {
			t.Fatalf("no control plane: %v", clusterErr)
		}
		t.Skipf("no control plane (run make envtest-assets): %v", clusterErr)
	}
}

// kubectlCX runs kubectl-cx against the envtest server.
func kubectlCX(t *testing.T, args ...string) result {
	t.Helper()
	return runCLI(t, append([]string{"--kubeconfig", kubeconfig}, args...)...)
}

func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// createExperiment creates the fixture experiment and writes st through
// the status subresource, with times relative to the real clock.
func createExperiment(t *testing.T, ns, name string, st cxv1.CXExperimentStatus) *cxv1.CXExperiment {
	t.Helper()
	ctx := context.Background()
	exp := newExperiment(ns, name)
	exp.UID, exp.CreationTimestamp = "", metav1.Time{}
	if err := k8s.Create(ctx, exp); err != nil {
		t.Fatal(err)
	}
	if st.Phase != "" {
		exp.Status = shiftTimes(st, time.Since(fixedNow))
		if err := k8s.Status().Update(ctx, exp); err != nil {
			t.Fatal(err)
		}
	}
	return exp
}

// shiftTimes moves every timestamp of a fixture status by d.
func shiftTimes(st cxv1.CXExperimentStatus, d time.Duration) cxv1.CXExperimentStatus {
	shift := func(t *metav1.Time) *metav1.Time {
		if t == nil {
			return nil
		}
		n := metav1.NewTime(t.Add(d).Truncate(time.Second))
		return &n
	}
	st.StartedAt, st.StepStartedAt, st.PausedAt = shift(st.StartedAt), shift(st.StepStartedAt), shift(st.PausedAt)
	st.CompletedAt, st.MeasuredAt = shift(st.CompletedAt), shift(st.MeasuredAt)
	for i := range st.Rollbacks {
		st.Rollbacks[i].At = *shift(&st.Rollbacks[i].At)
	}
	for i := range st.Conditions {
		st.Conditions[i].LastTransitionTime = *shift(&st.Conditions[i].LastTransitionTime)
	}
	return st
}

// setStatus changes the status of the experiment checkout-redesign.
func setStatus(t *testing.T, ns string, mutate func(*cxv1.CXExperimentStatus)) {
	t.Helper()
	ctx := context.Background()
	exp := &cxv1.CXExperiment{}
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "checkout-redesign"}, exp); err != nil {
		t.Fatal(err)
	}
	mutate(&exp.Status)
	if err := k8s.Status().Update(ctx, exp); err != nil {
		t.Fatal(err)
	}
}

// getExp reads the experiment checkout-redesign.
func getExp(t *testing.T, ns string) *cxv1.CXExperiment {
	t.Helper()
	exp := &cxv1.CXExperiment{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "checkout-redesign"}, exp); err != nil {
		t.Fatal(err)
	}
	return exp
}

// recordEvent writes an events.k8s.io/v1 Event about exp, as the
// controller's recorder does.
func recordEvent(t *testing.T, exp *cxv1.CXExperiment, typ, reason, note string) {
	t.Helper()
	e := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", exp.Name, time.Now().UnixNano()), Namespace: exp.Namespace},
		EventTime:           metav1.NowMicro(),
		ReportingController: "rapport", ReportingInstance: "rapport-test",
		Action: reason, Reason: reason, Type: typ, Note: note,
		Regarding: corev1.ObjectReference{Kind: "CXExperiment", APIVersion: cxv1.GroupVersion.String(),
			Namespace: exp.Namespace, Name: exp.Name, UID: exp.UID},
	}
	if err := k8s.Create(context.Background(), e); err != nil {
		t.Fatal(err)
	}
}

func TestClusterList(t *testing.T) {
	cluster(t)
	shop, bank, empty := newNamespace(t, "shop"), newNamespace(t, "bank"), newNamespace(t, "empty")
	createExperiment(t, shop, "checkout-redesign", progressingStatus())
	createExperiment(t, shop, "onboarding-tour", cxv1.CXExperimentStatus{})
	createExperiment(t, bank, "card-activation", succeededStatus())

	r := kubectlCX(t, "list", "-n", shop).expect(t, ExitOK)
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME ") {
		t.Fatalf("list -n %s:\n%s", shop, r.out)
	}
	for i, want := range []string{"checkout-redesign   Progressing   2/3    25%      enterprise,new-customers   86.0      one-page 86.1 (+0.1), express 80.9 (-5.1)",
		"onboarding-tour     Pending       0/3    -        enterprise,new-customers   -         -"} {
		if !strings.HasPrefix(lines[i+1], want) {
			t.Errorf("row %d:\n%s\nwant prefix\n%s", i+1, lines[i+1], want)
		}
	}

	r = kubectlCX(t, "list", "-A").expect(t, ExitOK)
	if f := strings.Fields(r.out); len(f) < 2 || f[0] != "NAMESPACE" || f[1] != "NAME" {
		t.Errorf("list -A has no NAMESPACE column:\n%s", r.out)
	}
	for _, want := range []string{shop + "   checkout-redesign   Progressing", shop + "   onboarding-tour     Pending", bank + "   card-activation     Succeeded"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("list -A lacks %q:\n%s", want, r.out)
		}
	}

	r = kubectlCX(t, "list", "-n", shop, "-o", "json").expect(t, ExitOK)
	var list cxv1.CXExperimentList
	if err := json.Unmarshal([]byte(r.out), &list); err != nil {
		t.Fatalf("list -o json does not parse: %v\n%s", err, r.out)
	}
	if list.Kind != "CXExperimentList" || len(list.Items) != 2 || list.Items[0].Name != "checkout-redesign" ||
		list.Items[0].Status.Phase != cxv1.PhaseProgressing || list.Items[0].Kind != "CXExperiment" || len(list.Items[0].ManagedFields) != 0 {
		t.Errorf("list -o json: %+v", list)
	}
	r = kubectlCX(t, "list", "-n", bank, "-o", "yaml").expect(t, ExitOK)
	list = cxv1.CXExperimentList{}
	if err := yaml.Unmarshal([]byte(r.out), &list); err != nil || len(list.Items) != 1 || list.Items[0].Status.Phase != cxv1.PhaseSucceeded {
		t.Errorf("list -o yaml: %v %+v", err, list)
	}

	// kubectl's printers: -o wide, name, jsonpath, custom-columns, --sort-by, --no-headers.
	r = kubectlCX(t, "list", "-n", shop, "-o", "wide").expect(t, ExitOK)
	if lines := strings.Split(strings.TrimSpace(r.out), "\n"); !strings.Contains(lines[0], "TOUCHPOINT   TRAFFIC          READY") ||
		!strings.Contains(lines[1], "checkout     route/checkout   True/StepRunning   step 2/3 holds") {
		t.Errorf("list -o wide:\n%s", r.out)
	}
	r = kubectlCX(t, "list", "-n", shop, "-o", "name").expect(t, ExitOK)
	if r.out != "cxexperiment.cx.rapport.dev/checkout-redesign\ncxexperiment.cx.rapport.dev/onboarding-tour\n" {
		t.Errorf("list -o name: %q", r.out)
	}
	r = kubectlCX(t, "list", "-n", shop, "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.phase}{" "}{end}`).expect(t, ExitOK)
	if r.out != "checkout-redesign=Progressing onboarding-tour= " {
		t.Errorf("list -o jsonpath: %q", r.out)
	}
	r = kubectlCX(t, "list", "-A", "-o", `custom-columns=NS:.metadata.namespace,NAME:.metadata.name,RUN:.status.run`, "--sort-by", ".metadata.name").expect(t, ExitOK)
	if want := fmt.Sprintf("NS%sNAME", strings.Repeat(" ", max(len(shop), len(bank))-2+3)); !strings.HasPrefix(r.out, want) ||
		!strings.Contains(r.out, bank+"   card-activation     1") || !strings.Contains(r.out, "onboarding-tour     <none>") {
		t.Errorf("list -o custom-columns:\n%s", r.out)
	}
	r = kubectlCX(t, "list", "-n", shop, "--no-headers", "--sort-by", "{.metadata.creationTimestamp}").expect(t, ExitOK)
	if lines := strings.Split(strings.TrimSpace(r.out), "\n"); len(lines) != 2 || strings.HasPrefix(lines[0], "NAME") {
		t.Errorf("list --no-headers:\n%s", r.out)
	}

	r = kubectlCX(t, "list", "-n", empty).expect(t, ExitOK)
	if r.out != "" || !strings.Contains(r.err, "No experiments found in namespace "+empty) {
		t.Errorf("empty namespace: stdout %q stderr %q", r.out, r.err)
	}
}

func TestClusterStatus(t *testing.T) {
	cluster(t)
	ns := newNamespace(t, "shop")
	exp := createExperiment(t, ns, "checkout-redesign", progressingStatus())
	recordEvent(t, exp, "Normal", "Started", "step 1/3: weight 5% for one-page, express")
	recordEvent(t, exp, "Warning", "VariantRolledBack", "express rolled back in segment new-customers at step 1")
	other := createExperiment(t, ns, "other", cxv1.CXExperimentStatus{})
	recordEvent(t, other, "Normal", "Started", "an event of another experiment")

	r := kubectlCX(t, "status", "checkout-redesign", "-n", ns).expect(t, ExitOK)
	for _, want := range []string{
		"Name:         " + ns + "/checkout-redesign",
		"Hypothesis:   One-page checkout keeps customers as satisfied with fewer steps",
		"Phase:        Progressing",
		"Step 2/3 [██████░░░░] 25%  (12m in step, min 30m)",
		"Segment enterprise",
		"  one-page   Active    25%      598         24.9%   87.1 ± 3.3   1.1 [-2.8, 5.0]    NonInferior",
		"  express    RolledBack   0%       412         12.5%   74.1 ± 3.9   -11.9 [-16.8, -7.0]   Inferior",
		"  new-customers   express   Inferior   1      412",
		"Degraded      True     PartialRollback",
		"Events (last 2):",
		"Normal    Started             step 1/3: weight 5% for one-page, express",
		"Warning   VariantRolledBack   express rolled back in segment new-customers at step 1",
	} {
		if !strings.Contains(r.out, want) {
			t.Errorf("status lacks %q:\n%s", want, r.out)
		}
	}
	if strings.Contains(r.out, "another experiment") {
		t.Error("status shows an event of another experiment")
	}
	if strings.Contains(r.out, "\x1b[") {
		t.Error("colour codes on a stdout that is not a terminal")
	}
	if r := kubectlCX(t, "status", "checkout-redesign", "-n", ns, "--events", "1").expect(t, ExitOK); !strings.Contains(r.out, "Events (last 1):") || strings.Contains(r.out, "weight 5% for one-page") {
		t.Errorf("--events 1 shows:\n%s", r.out)
	}

	r = kubectlCX(t, "status", "checkout-redesign", "-n", ns, "-o", "json").expect(t, ExitOK)
	var back cxv1.CXExperiment
	if err := json.Unmarshal([]byte(r.out), &back); err != nil {
		t.Fatalf("status -o json does not parse: %v", err)
	}
	if back.Name != "checkout-redesign" || back.Kind != "CXExperiment" || back.APIVersion != "cx.rapport.dev/v1alpha1" ||
		back.Status.Phase != cxv1.PhaseProgressing || len(back.Status.Segments) != 2 || back.Spec.Hypothesis != exp.Spec.Hypothesis {
		t.Errorf("status -o json: %+v", back)
	}
	r = kubectlCX(t, "status", "checkout-redesign", "-n", ns, "-o", "yaml").expect(t, ExitOK)
	back = cxv1.CXExperiment{}
	if err := yaml.Unmarshal([]byte(r.out), &back); err != nil || back.Status.CurrentStep != 2 || len(back.ManagedFields) != 0 {
		t.Errorf("status -o yaml: %v %+v", err, back.Status)
	}
	if r := kubectlCX(t, "status", "checkout-redesign", "-n", ns, "-o", "name").expect(t, ExitOK); r.out != "cxexperiment.cx.rapport.dev/checkout-redesign\n" {
		t.Errorf("status -o name: %q", r.out)
	}
	if r := kubectlCX(t, "status", "checkout-redesign", "-n", ns, "-o", "jsonpath={.status.phase}").expect(t, ExitOK); r.out != "Progressing" {
		t.Errorf("status -o jsonpath: %q", r.out)
	}
	if r := kubectlCX(t, "status", "checkout-redesign", "-n", ns, "-o", "wide").expect(t, ExitOK); !strings.HasPrefix(r.out, "NAME ") || !strings.Contains(r.out, "route/checkout") {
		t.Errorf("status -o wide:\n%s", r.out)
	}
	if r := kubectlCX(t, "status", "checkout-redesign", "-n", ns, "-o", "yaml", "--show-managed-fields").expect(t, ExitOK); !strings.Contains(r.out, "managedFields:") {
		t.Errorf("status --show-managed-fields left managedFields out")
	}
}

// waitCLI runs `status --wait` in the background; the result arrives on the channel.
func waitCLI(t *testing.T, args ...string) (<-chan result, *syncBuffer) {
	t.Helper()
	var out, errOut syncBuffer
	done := make(chan result, 1)
	go func() {
		code := execute(context.Background(), nil, &out, &errOut, append([]string{"--kubeconfig", kubeconfig}, args...)...)
		done <- result{out: out.String(), err: errOut.String(), code: code}
	}()
	return done, &out
}

// TestClusterStatusWait: `status --wait/--timeout` waits for the run's
// outcome and exits with a code per outcome, for CI pipelines.
func TestClusterStatusWait(t *testing.T) {
	cluster(t)
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(30 * time.Second)
	g.SetDefaultEventuallyPollingInterval(20 * time.Millisecond)

	t.Run("promoted: 0, at once when it already ended", func(t *testing.T) {
		ns := newNamespace(t, "shop")
		createExperiment(t, ns, "checkout-redesign", succeededStatus())
		r := kubectlCX(t, "status", "checkout-redesign", "-n", ns, "--wait").expect(t, ExitOK)
		if !strings.HasPrefix(r.out, "Succeeded - step 3/3 (50%): promoted: enterprise") {
			t.Errorf("stdout %q", r.out)
		}
	})
	t.Run("rolled back: 4, with a line per change", func(t *testing.T) {
		ns := newNamespace(t, "shop")
		createExperiment(t, ns, "checkout-redesign", progressingStatus())
		done, out := waitCLI(t, "status", "checkout-redesign", "-n", ns, "--timeout", "5m")
		g.Eventually(out.String).Should(HavePrefix("Progressing - step 2/3 (25%): step 2/3 holds"))
		setStatus(t, ns, func(st *cxv1.CXExperimentStatus) { st.Phase = cxv1.PhasePaused })
		g.Eventually(out.String).Should(ContainSubstring("\nPaused - step 2/3 (25%)"))
		setStatus(t, ns, func(st *cxv1.CXExperimentStatus) {
			st.Phase = cxv1.PhaseRolledBack
			st.Conditions[0].Status, st.Conditions[0].Reason, st.Conditions[0].Message = metav1.ConditionFalse, cxv1.ReasonRolledBack, "every variant was rolled back in every segment"
		})
		var r result
		g.Eventually(done).Should(Receive(&r))
		g.Expect(r.code).To(Equal(ExitRolledBack), r.err)
		g.Expect(r.out).To(HaveSuffix("RolledBack - step 2/3 (25%): every variant was rolled back in every segment\n"))
		g.Expect(r.err).To(ContainSubstring("cxexperiment " + ns + "/checkout-redesign was rolled back: every variant was rolled back"))
	})
	t.Run("failed: 5", func(t *testing.T) {
		ns := newNamespace(t, "shop")
		st := progressingStatus()
		st.Phase = cxv1.PhaseFailed
		createExperiment(t, ns, "checkout-redesign", st)
		r := kubectlCX(t, "status", "checkout-redesign", "-n", ns, "--timeout", "1m").expect(t, ExitFailed)
		g.Expect(r.err).To(ContainSubstring("failed: step 2/3 holds"))
	})
	t.Run("timed out: 6", func(t *testing.T) {
		ns := newNamespace(t, "shop")
		createExperiment(t, ns, "checkout-redesign", progressingStatus())
		r := kubectlCX(t, "status", "checkout-redesign", "-n", ns, "--timeout", "1s").expect(t, ExitTimeout)
		g.Expect(r.err).To(ContainSubstring("timed out after 1s waiting for " + ns + "/checkout-redesign to end (now: Progressing - step 2/3"))
	})
	t.Run("timed out before the first read: 6", func(t *testing.T) {
		ns := newNamespace(t, "shop")
		createExperiment(t, ns, "checkout-redesign", progressingStatus())
		r := kubectlCX(t, "status", "checkout-redesign", "-n", ns, "--timeout", "1ns").expect(t, ExitTimeout)
		g.Expect(r.err).To(ContainSubstring("timed out after 1ns waiting for " + ns + "/checkout-redesign to end (now: not read yet)"))
	})
	t.Run("deleted while waiting: 3", func(t *testing.T) {
		ns := newNamespace(t, "shop")
		createExperiment(t, ns, "checkout-redesign", progressingStatus())
		done, out := waitCLI(t, "status", "checkout-redesign", "-n", ns, "--wait")
		g.Eventually(out.String).Should(ContainSubstring("Progressing"))
		g.Expect(k8s.Delete(context.Background(), getExp(t, ns))).To(Succeed())
		var r result
		g.Eventually(done).Should(Receive(&r))
		g.Expect(r.code).To(Equal(ExitNotFound))
		g.Expect(r.err).To(ContainSubstring("was deleted while waiting"))
	})
	t.Run("with -o: lines on stderr, the final object on stdout", func(t *testing.T) {
		ns := newNamespace(t, "shop")
		createExperiment(t, ns, "checkout-redesign", succeededStatus())
		r := kubectlCX(t, "status", "checkout-redesign", "-n", ns, "--timeout", "1m", "-o", "jsonpath={.status.phase}").expect(t, ExitOK)
		g.Expect(r.out).To(Equal("Succeeded"))
		g.Expect(r.err).To(HavePrefix("Succeeded - step 3/3"))
	})
	t.Run("not found: 3", func(t *testing.T) {
		ns := newNamespace(t, "shop")
		kubectlCX(t, "status", "nope", "-n", ns, "--timeout", "1m").expect(t, ExitNotFound)
	})
}

func TestClusterVersionAndCompletion(t *testing.T) {
	cluster(t)
	ns := newNamespace(t, "shop")
	createExperiment(t, ns, "checkout-redesign", progressingStatus())
	createExperiment(t, ns, "onboarding-tour", cxv1.CXExperimentStatus{})

	r := kubectlCX(t, "version").expect(t, ExitOK)
	for _, want := range []string{"Client Version: ", "Kubernetes Version: v1.37", "Rapport API: cx.rapport.dev/v1alpha1 served"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("version lacks %q:\n%s", want, r.out)
		}
	}
	r = kubectlCX(t, "version", "-o", "json").expect(t, ExitOK)
	var v VersionInfo
	if err := json.Unmarshal([]byte(r.out), &v); err != nil || v.ServerVersion == nil || v.ServerVersion.RapportAPI != "cx.rapport.dev/v1alpha1" {
		t.Errorf("version -o json: %v %s", err, r.out)
	}
	if r := runCLI(t, "version", "--server", "http://127.0.0.1:1", "--request-timeout", "2s").expect(t, ExitError); !strings.Contains(r.out, "Client Version:") || !strings.Contains(r.err, "cannot read the server's version") {
		t.Errorf("version without a cluster: stdout %q stderr %q", r.out, r.err)
	}

	// Experiment names complete from the cluster, for every command taking one.
	for _, cmd := range []string{"status", "report", "pause", "promote"} {
		r := kubectlCX(t, "__complete", cmd, "-n", ns, "check").expect(t, ExitOK)
		if !strings.HasPrefix(r.out, "checkout-redesign\n:4\n") {
			t.Errorf("__complete %s check: %q", cmd, r.out)
		}
	}
}

func TestClusterNotFound(t *testing.T) {
	cluster(t)
	ns := newNamespace(t, "shop")
	for _, args := range [][]string{
		{"status", "nope"}, {"status", "nope", "--watch"}, {"report", "nope"},
		{"pause", "nope"}, {"resume", "nope"}, {"promote", "nope"}, {"abort", "nope"}, {"retry", "nope"},
	} {
		r := kubectlCX(t, append(args, "-n", ns)...).expect(t, ExitNotFound)
		if want := fmt.Sprintf(`cxexperiment "nope" not found in namespace %q`, ns); !strings.Contains(r.err, want) {
			t.Errorf("%v: stderr %q lacks %q", args, r.err, want)
		}
	}
}

func TestClusterPauseResume(t *testing.T) {
	cluster(t)
	ns := newNamespace(t, "shop")
	createExperiment(t, ns, "checkout-redesign", progressingStatus())

	r := kubectlCX(t, "pause", "checkout-redesign", "-n", ns).expect(t, ExitOK)
	if !getExp(t, ns).Spec.Paused {
		t.Fatal("pause did not set spec.paused")
	}
	if want := "paused " + ns + "/checkout-redesign (spec.paused: true); the controller holds step 2/3 at its next reconcile"; !strings.Contains(r.out, want) {
		t.Errorf("pause printed %q", r.out)
	}
	if r := kubectlCX(t, "pause", "checkout-redesign", "-n", ns).expect(t, ExitOK); !strings.Contains(r.out, "already paused") {
		t.Errorf("second pause printed %q", r.out)
	}

	r = kubectlCX(t, "resume", "checkout-redesign", "-n", ns).expect(t, ExitOK)
	if getExp(t, ns).Spec.Paused {
		t.Fatal("resume did not clear spec.paused")
	}
	if !strings.Contains(r.out, "resumed "+ns+"/checkout-redesign (spec.paused: false)") {
		t.Errorf("resume printed %q", r.out)
	}
	if r := kubectlCX(t, "resume", "checkout-redesign", "-n", ns).expect(t, ExitOK); !strings.Contains(r.out, "is not paused") {
		t.Errorf("second resume printed %q", r.out)
	}

	// Pausing an experiment that has ended is pointless: refused unless --force.
	setStatus(t, ns, func(st *cxv1.CXExperimentStatus) { st.Phase = cxv1.PhaseRolledBack })
	r = kubectlCX(t, "pause", "checkout-redesign", "-n", ns).expect(t, ExitError)
	if !strings.Contains(r.err, "refusing to pause "+ns+"/checkout-redesign: it has ended (RolledBack)") || !strings.Contains(r.err, "--force") {
		t.Errorf("refusal: %q", r.err)
	}
	if getExp(t, ns).Spec.Paused {
		t.Fatal("a refused pause changed spec.paused")
	}
	r = kubectlCX(t, "pause", "checkout-redesign", "-n", ns, "--force").expect(t, ExitOK)
	if !getExp(t, ns).Spec.Paused || !strings.Contains(r.err, "(--force given)") {
		t.Errorf("pause --force: paused=%v stderr %q", getExp(t, ns).Spec.Paused, r.err)
	}
}

// annotation reads an annotation of the experiment checkout-redesign.
func annotation(t *testing.T, ns, key string) string {
	t.Helper()
	return getExp(t, ns).Annotations[key]
}

func TestClusterActions(t *testing.T) {
	cluster(t)
	ns := newNamespace(t, "shop")
	createExperiment(t, ns, "checkout-redesign", progressingStatus())
	ref := ns + "/checkout-redesign"

	// promote: a fresh RFC 3339 token each time.
	r := kubectlCX(t, "promote", "checkout-redesign", "-n", ns).expect(t, ExitOK)
	first := annotation(t, ns, cxv1.AnnotationPromote)
	if _, err := time.Parse(time.RFC3339Nano, first); err != nil {
		t.Fatalf("promote token %q is not RFC 3339: %v", first, err)
	}
	if want := fmt.Sprintf("promote requested for %s (token %s); the controller acts on it at its next reconcile", ref, first); !strings.Contains(r.out, want) {
		t.Errorf("promote printed %q, want %q", r.out, want)
	}
	r = kubectlCX(t, "promote", "checkout-redesign", "-n", ns).expect(t, ExitOK)
	second := annotation(t, ns, cxv1.AnnotationPromote)
	if second == first {
		t.Errorf("the second promote reused the token %q", first)
	}
	if !strings.Contains(r.err, "previous promote request (token "+first+") has not been handled yet") {
		t.Errorf("no note about the unhandled request: %q", r.err)
	}

	// retry of a running experiment is pointless.
	r = kubectlCX(t, "retry", "checkout-redesign", "-n", ns).expect(t, ExitError)
	if !strings.Contains(r.err, "refusing to retry "+ref+": it is Progressing: only a RolledBack or Failed experiment can be retried") {
		t.Errorf("retry refusal: %q", r.err)
	}
	if got := annotation(t, ns, cxv1.AnnotationRetry); got != "" {
		t.Errorf("a refused retry wrote the annotation %q", got)
	}

	// abort, then the experiment ends RolledBack.
	kubectlCX(t, "abort", "checkout-redesign", "-n", ns).expect(t, ExitOK)
	abortTok := annotation(t, ns, cxv1.AnnotationAbort)
	if _, err := time.Parse(time.RFC3339Nano, abortTok); err != nil {
		t.Fatalf("abort token %q: %v", abortTok, err)
	}
	setStatus(t, ns, func(st *cxv1.CXExperimentStatus) {
		st.Phase = cxv1.PhaseRolledBack
		st.HandledActions = cxv1.HandledActions{Abort: abortTok, Promote: second}
	})
	for _, a := range []string{"promote", "abort", "pause", "resume"} {
		r := kubectlCX(t, a, "checkout-redesign", "-n", ns).expect(t, ExitError)
		if !strings.Contains(r.err, "refusing to "+a) {
			t.Errorf("%s of a RolledBack experiment: %q", a, r.err)
		}
	}
	if got := annotation(t, ns, cxv1.AnnotationAbort); got != abortTok {
		t.Errorf("a refused abort changed the token to %q", got)
	}

	r = kubectlCX(t, "retry", "checkout-redesign", "-n", ns).expect(t, ExitOK)
	retryTok := annotation(t, ns, cxv1.AnnotationRetry)
	if retryTok == "" || !strings.Contains(r.out, "retry requested for "+ref+" (token "+retryTok+"); the controller starts run 2") {
		t.Errorf("retry: token %q, printed %q", retryTok, r.out)
	}
	if r.err != "" {
		t.Errorf("retry printed to stderr: %q", r.err)
	}
	kubectlCX(t, "retry", "checkout-redesign", "-n", ns).expect(t, ExitOK)
	if again := annotation(t, ns, cxv1.AnnotationRetry); again == retryTok {
		t.Error("the second retry reused the token")
	}
}

func TestClusterReport(t *testing.T) {
	cluster(t)
	ns := newNamespace(t, "shop")
	exp := createExperiment(t, ns, "checkout-redesign", succeededStatus())
	recordEvent(t, exp, "Normal", "Promoted", "enterprise: one-page")

	r := kubectlCX(t, "report", "checkout-redesign", "-n", ns).expect(t, ExitOK)
	for _, want := range []string{
		"# Experiment report: " + ns + "/checkout-redesign (run 1)",
		"- **Outcome:** Succeeded: enterprise serves one-page; new-customers keeps the control.",
		"| Max drop | 3 points below the control |",
		"| event | Promoted | enterprise: one-page |",
		"| one-page | Promoted | 100% | 2,431 | 25.7% | 87.3 ± 1.5 [85.8, 88.8] | 1.2 [-0.7, 3.1] | NonInferior |",
		"| new-customers | one-page | Inferior | 2 | 690 |",
	} {
		if !strings.Contains(r.out, want) {
			t.Errorf("report lacks %q:\n%s", want, r.out)
		}
	}

	r = kubectlCX(t, "report", "checkout-redesign", "-n", ns, "-o", "json").expect(t, ExitOK)
	var rep Report
	dec := json.NewDecoder(strings.NewReader(r.out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("report -o json: %v", err)
	}
	if rep.APIVersion != ReportAPIVersion || rep.Experiment.Namespace != ns || rep.Experiment.UID != string(exp.UID) ||
		len(rep.Results) != 2 || rep.Decision.Outcome != "Succeeded" || len(rep.Decision.Rollbacks) != 2 || rep.Settings.MaxDrop != 3 {
		t.Errorf("report -o json: %+v", rep)
	}
	var events int
	for _, e := range rep.Timeline {
		if e.Source == "event" {
			events++
		}
	}
	if events != 1 {
		t.Errorf("timeline has %d events, want 1", events)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestClusterWatch(t *testing.T) {
	cluster(t)
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(10 * time.Second)
	g.SetDefaultEventuallyPollingInterval(20 * time.Millisecond)
	ns := newNamespace(t, "shop")
	exp := createExperiment(t, ns, "checkout-redesign", progressingStatus())

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	// A frozen clock: the view changes only when the objects do, so that a
	// write that changes nothing shown can be checked to print nothing.
	o := NewOptions(testStreams(&out, &errOut))
	o.IsTerminal = func(io.Writer) bool { return false }
	frozen := time.Now().Add(time.Minute)
	o.Now = func() time.Time { return frozen }
	go func() {
		done <- Run(ctx, o, []string{"--kubeconfig", kubeconfig, "status", "checkout-redesign", "-n", ns, "--watch"})
	}()

	// The first block.
	g.Eventually(out.String).Should(ContainSubstring("Step 2/3 [██████░░░░] 25%"))
	g.Expect(out.String()).NotTo(ContainSubstring(blockSeparator))

	// A status change (the controller advancing a step) prints a new block.
	setStatus(t, ns, func(st *cxv1.CXExperimentStatus) {
		st.CurrentStep, st.StepWeight = 3, 50
		now := metav1.Now()
		st.StepStartedAt = &now
	})
	g.Eventually(out.String).Should(ContainSubstring("Step 3/3 [██████████] 50%"))
	g.Expect(strings.Count(out.String(), blockSeparator+"\n")).To(Equal(1))
	g.Expect(out.String()).NotTo(ContainSubstring(clearScreen), "no redraw when stdout is not a terminal")

	// So does a new event about the experiment.
	recordEvent(t, exp, "Normal", "StepAdvanced", "step 3/3: weight 50%")
	g.Eventually(out.String).Should(MatchRegexp(`Normal +StepAdvanced +step 3/3: weight 50%`))
	blocks := strings.Count(out.String(), blockSeparator+"\n")
	g.Expect(blocks).To(Equal(2))

	// A write that changes nothing shown prints nothing.
	e := getExp(t, ns)
	e.Labels = map[string]string{"team": "checkout"}
	g.Expect(k8s.Update(context.Background(), e)).To(Succeed())
	// Then the experiment is deleted: the watch ends with exit code 0.
	g.Expect(k8s.Delete(context.Background(), e)).To(Succeed())
	g.Eventually(done).Should(Receive(Equal(ExitOK)))
	g.Expect(out.String()).To(HaveSuffix("cxexperiment " + ns + "/checkout-redesign was deleted\n"))
	g.Expect(strings.Count(out.String(), blockSeparator+"\n")).To(Equal(blocks), "a change that shows nothing new printed a block")
	g.Expect(errOut.String()).To(BeEmpty())
}

func TestClusterWatchStopsOnCancel(t *testing.T) {
	cluster(t)
	g := NewWithT(t)
	ns := newNamespace(t, "shop")
	createExperiment(t, ns, "checkout-redesign", progressingStatus())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- execute(ctx, nil, &out, &out, "--kubeconfig", kubeconfig, "status", "checkout-redesign", "-n", ns, "-w")
	}()
	g.Eventually(out.String, 10*time.Second, 20*time.Millisecond).Should(ContainSubstring("Segment enterprise"))
	cancel() // what Ctrl-C does through signal.NotifyContext in main
	g.Eventually(done, 10*time.Second).Should(Receive(Equal(ExitOK)))
}

// TestClusterWatchTerminal: on a terminal, each change redraws the view in place.
func TestClusterWatchTerminal(t *testing.T) {
	cluster(t)
	g := NewWithT(t)
	ns := newNamespace(t, "shop")
	createExperiment(t, ns, "checkout-redesign", progressingStatus())

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out syncBuffer
	o := NewOptions(testStreams(&out, nil))
	o.IsTerminal = func(w io.Writer) bool { return w == &out }
	o.Getenv = func(k string) string {
		if k == "NO_COLOR" {
			return "1"
		}
		return ""
	}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, o, []string{"--kubeconfig", kubeconfig, "status", "checkout-redesign", "-n", ns, "--watch"})
	}()
	g.Eventually(out.String, 10*time.Second, 20*time.Millisecond).Should(HavePrefix(clearScreen + "Name:"))
	setStatus(t, ns, func(st *cxv1.CXExperimentStatus) { st.Phase = cxv1.PhasePaused })
	g.Eventually(func() int { return strings.Count(out.String(), clearScreen) }, 10*time.Second, 20*time.Millisecond).Should(Equal(2))
	g.Expect(out.String()).NotTo(ContainSubstring(blockSeparator + "\n"))
	g.Expect(out.String()).NotTo(ContainSubstring("\x1b[3"), "NO_COLOR is set: no colour")
	cancel()
	g.Eventually(done, 10*time.Second).Should(Receive(Equal(ExitOK)))
}

func TestClusterReportHTML(t *testing.T) {
	cluster(t)
	ns := newNamespace(t, "shop")
	exp := createExperiment(t, ns, "checkout-redesign", succeededStatus())

	// Without a history ConfigMap the page says so and has no chart over time.
	r := kubectlCX(t, "report", "checkout-redesign", "-n", ns, "-o", "html").expect(t, ExitOK)
	if !strings.Contains(r.out, "No history of this run was recorded") || strings.Contains(r.out, `-difference"`) {
		t.Errorf("report -o html without history:\n%.2000s", r.out)
	}

	// With the history the controller writes: one difference chart per segment.
	h := history.Append(nil, exp.Name, &exp.Status, exp.Status.StartedAt.Time)
	h = history.Append(h, exp.Name, &exp.Status, exp.Status.CompletedAt.Time)
	data, err := history.Encode(h)
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: history.ConfigMapName(exp.Name)},
		BinaryData: map[string][]byte{history.Key: data}}
	if err := k8s.Create(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
	r = kubectlCX(t, "report", "checkout-redesign", "-n", ns, "-o", "html").expect(t, ExitOK)
	if r.err != "" {
		t.Errorf("report -o html warned: %q", r.err)
	}
	for _, seg := range exp.Spec.SegmentNames() {
		if !strings.Contains(r.out, `data-segment="`+seg+`"`) {
			t.Errorf("report -o html has no section for segment %s", seg)
		}
	}
	if n := strings.Count(r.out, `-difference" class="chart"`); n != len(exp.Spec.SegmentNames()) {
		t.Errorf("report -o html: %d difference charts, want one per segment (%d)", n, len(exp.Spec.SegmentNames()))
	}
	if strings.Contains(strings.ToLower(r.out), "<script") {
		t.Error("report -o html has a script")
	}

	// An unreadable history is a warning, not a failure.
	cm.BinaryData[history.Key] = []byte("not gzip")
	if err := k8s.Update(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
	r = kubectlCX(t, "report", "checkout-redesign", "-n", ns, "-o", "html").expect(t, ExitOK)
	if !strings.Contains(r.err, "Warning: the history ConfigMap "+ns+"/checkout-redesign-history: decode history: not gzip") {
		t.Errorf("report -o html with a broken history warned %q", r.err)
	}
}
