package integration

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/metrics"
	"github.com/rapport-dev/rapport/internal/notify"
	"github.com/rapport-dev/rapport/test/utils"
)

const evidence = "CSAT 74.1 [70.2, 78.0] vs control 86.0: difference -11.9 [-16.8, -7.0] lies below -3 (max drop): inferior after 412 responses"

func createNamespace(name string) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	Expect(k8s.Create(context.Background(), ns)).To(Succeed())
}

// newNamespace makes a namespace for one spec.
func newNamespace() string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: utils.ShortName(CurrentSpecReport().LeafNodeText) + "-"}}
	Expect(k8s.Create(context.Background(), ns)).To(Succeed())
	return ns.Name
}

// createExperiment creates a valid experiment (no controller runs here:
// specs write its status as the experiment controller would).
func createExperiment(ns, name string, labels, annotations map[string]string) *cxv1.CXExperiment {
	exp := &cxv1.CXExperiment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, Annotations: annotations},
		Spec: cxv1.CXExperimentSpec{
			Variants: []cxv1.Variant{
				{Name: "control", Control: true, Service: &cxv1.ServiceRef{Name: "checkout-v1", Port: 8080}},
				{Name: "one-page", Service: &cxv1.ServiceRef{Name: "checkout-v2", Port: 8080}},
				{Name: "express", Service: &cxv1.ServiceRef{Name: "checkout-v3", Port: 8080}},
			},
			Segments: []string{"enterprise", "new-customers"},
			Traffic:  cxv1.Traffic{GatewayAPI: &cxv1.GatewayAPITraffic{HTTPRoute: "checkout"}},
			Steps:    []cxv1.Step{{Weight: 10, MinDuration: metav1.Duration{Duration: time.Minute}}, {Weight: 50, MinDuration: metav1.Duration{Duration: time.Minute}}},
			Satisfaction: cxv1.Satisfaction{
				Metric: cxv1.MetricCSAT, MaxDrop: "3", Confidence: "95", MinResponses: 100,
				Source:   cxv1.SatisfactionSource{Collector: &cxv1.CollectorSource{}},
				Interval: metav1.Duration{Duration: 30 * time.Second},
			},
		},
	}
	Expect(k8s.Create(context.Background(), exp)).To(Succeed())
	return exp
}

// setStatus writes the experiment's status, as the experiment controller does.
func setStatus(exp *cxv1.CXExperiment, mutate func(*cxv1.CXExperimentStatus)) {
	Eventually(func(g Gomega) {
		cur := &cxv1.CXExperiment{}
		g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(exp), cur)).To(Succeed())
		if cur.Status.Phase == "" {
			cur.Status = cxv1.CXExperimentStatus{Phase: cxv1.PhaseProgressing, Run: 1, CurrentStep: 1, StepWeight: 10}
		}
		mutate(&cur.Status)
		g.Expect(k8s.Status().Update(context.Background(), cur)).To(Succeed())
	}).Should(Succeed())
}

func addRollback(segment, variant string) func(*cxv1.CXExperimentStatus) {
	return func(st *cxv1.CXExperimentStatus) {
		st.Rollbacks = append(st.Rollbacks, cxv1.Rollback{
			Segment: segment, Variant: variant, Reason: cxv1.RollbackInferior, At: metav1.Now(), Step: 1, Responses: 412, Evidence: evidence,
		})
	}
}

// configure writes the notification ConfigMap and Secret of a namespace.
func configure(ns string, data, secret map[string]string) {
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: notify.ConfigMapName}, Data: data}
	Expect(k8s.Create(ctx, cm)).To(Succeed())
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: notify.SecretName}, StringData: secret}
	Expect(k8s.Create(ctx, s)).To(Succeed())
}

// hook is the path of a generic webhook stand-in unique to the spec.
func hook(ns, name string) string { return "/hooks/" + ns + "-" + name }

// documents decodes the webhook documents delivered on path.
func documents(path string) []notify.Document {
	var out []notify.Document
	for _, r := range channels.Delivered(path) {
		var d notify.Document
		Expect(r.JSON(&d)).To(Succeed())
		out = append(out, d)
	}
	return out
}

func triggersOf(docs []notify.Document) []string {
	var out []string
	for _, d := range docs {
		out = append(out, d.Trigger)
	}
	return out
}

// state reads the notifier's state ConfigMap of an experiment.
func state(exp *cxv1.CXExperiment) *notify.State {
	cm := &corev1.ConfigMap{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: exp.Namespace, Name: notify.StateName(exp.Name)}, cm); err != nil {
		return nil
	}
	st := &notify.State{}
	Expect(json.Unmarshal([]byte(cm.Data["state.json"]), st)).To(Succeed())
	return st
}

var _ = Describe("Notifications", func() {
	var n *notifier
	BeforeEach(func() {
		n = startNotifierWith(nil)
		DeferCleanup(func() { n.stop() })
	})

	It("sends a rollback with its evidence to Slack, Teams and a signed webhook once the status records it", func() {
		ns := newNamespace()
		slackPath, teamsPath, wfPath, hookPath := "/slack/api/chat.postMessage", "/teams/"+ns, "/workflows/"+ns, hook(ns, "audit")
		configure(ns, map[string]string{
			"service.slack":                  "token: $slack-token\napiURL: " + channels.URL + "/slack/api/",
			"service.teams":                  "recipientUrls:\n  rollouts: " + channels.URL + teamsPath,
			"service.teams-workflows.teamsw": "url: " + channels.URL + wfPath,
			"service.webhook.audit":          "url: " + channels.URL + hookPath + "\nsignature:\n  secret: $audit-hmac",
			"context":                        "reportURL: https://grafana.example.com/d/rapport?var-namespace={{ .namespace }}&var-experiment={{ .name }}",
		}, map[string]string{"slack-token": "xoxb-test", "audit-hmac": "s3cret-hmac"})
		exp := createExperiment(ns, "checkout", nil, map[string]string{
			notify.AnnotationPrefix + "/subscribe.on-rolled-back.slack":  ns + "-rollouts",
			notify.AnnotationPrefix + "/subscribe.on-rolled-back.teams":  "rollouts",
			notify.AnnotationPrefix + "/subscribe.on-rolled-back.teamsw": "",
			notify.AnnotationPrefix + "/subscribe.on-rolled-back.audit":  "",
		})

		By("nothing is sent while the status records nothing")
		setStatus(exp, func(*cxv1.CXExperimentStatus) {})
		Consistently(func() int { return len(channels.Requests(hookPath)) }, "1s").Should(BeZero())

		By("the rollback, once written to the status, reaches every channel once")
		setStatus(exp, addRollback("new-customers", "express"))
		slackFor := func() []utils.ChannelRequest {
			var out []utils.ChannelRequest
			for _, r := range channels.Delivered(slackPath) {
				if r.Form.Get("channel") == ns+"-rollouts" {
					out = append(out, r)
				}
			}
			return out
		}
		Eventually(func(g Gomega) {
			g.Expect(slackFor()).To(HaveLen(1))
			g.Expect(channels.Delivered(teamsPath)).To(HaveLen(1))
			g.Expect(channels.Delivered(wfPath)).To(HaveLen(1))
			g.Expect(channels.Delivered(hookPath)).To(HaveLen(1))
		}).Should(Succeed())

		Expect(slackFor()[0].Form.Get("text")).To(And(ContainSubstring("rolled express back in segment new-customers"), ContainSubstring(evidence)))
		doc := documents(hookPath)[0]
		Expect(doc.Trigger).To(Equal("on-rolled-back"))
		Expect(doc.Segment).To(Equal("new-customers"))
		Expect(doc.Variant).To(Equal("express"))
		Expect(doc.Evidence).To(Equal(evidence))
		Expect(doc.ReportURL).To(Equal(fmt.Sprintf("https://grafana.example.com/d/rapport?var-namespace=%s&var-experiment=checkout", ns)))
		body := channels.Delivered(hookPath)[0]
		Expect(hmac.Equal([]byte(body.Header.Get(notify.HeaderSignature)), []byte(notify.Sign([]byte("s3cret-hmac"), body.Body)))).To(BeTrue(), "the signature verifies")

		By("the delivery is recorded in a ConfigMap the experiment owns, and not repeated")
		// The state is written once the sends returned: a receiver can hold
		// its request before the notifier has recorded it.
		Eventually(func(g Gomega) {
			st := state(exp)
			g.Expect(st).NotTo(BeNil())
			g.Expect(st.Events).To(HaveLen(1))
			for _, es := range st.Events {
				for _, d := range es.Deliveries {
					g.Expect(d.DeliveredAt).NotTo(BeNil(), d.Service)
				}
			}
		}).Should(Succeed())
		setStatus(exp, func(st *cxv1.CXExperimentStatus) { st.CurrentStep = 2 })
		Consistently(func() int { return len(channels.Requests(hookPath)) }, "2s").Should(Equal(1))
		cm := &corev1.ConfigMap{}
		Expect(k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: notify.StateName("checkout")}, cm)).To(Succeed())
		Expect(metav1.IsControlledBy(cm, exp)).To(BeTrue())
	})

	It("retries a receiver that fails until it recovers, counting the failed deliveries", func() {
		ns := newNamespace()
		path := hook(ns, "flaky")
		configure(ns, map[string]string{
			"service.webhook.flaky": "url: " + channels.URL + path,
			"subscriptions":         "- recipients: [flaky]\n  triggers: [on-rolled-back]",
		}, nil)
		exp := createExperiment(ns, "checkout", nil, nil)
		failed := metrics.NotificationsFailed.WithLabelValues("on-rolled-back", "flaky")
		before := testutil.ToFloat64(failed)

		channels.Fail(path, 503)
		DeferCleanup(func() { channels.Recover(path) })
		setStatus(exp, addRollback("enterprise", "one-page"))
		Eventually(func() int { return len(channels.Requests(path)) }).Should(BeNumerically(">=", 3))
		Expect(channels.Delivered(path)).To(BeEmpty())
		// The failure is counted once the notifier has read the answer.
		Eventually(func() float64 { return testutil.ToFloat64(failed) - before }).Should(BeNumerically(">=", 3))
		Eventually(func(g Gomega) {
			st := state(exp)
			g.Expect(st).NotTo(BeNil())
			for _, es := range st.Events {
				g.Expect(es.Deliveries[0].Attempts).To(BeNumerically(">=", 2))
				g.Expect(es.Deliveries[0].LastError).To(ContainSubstring("503"))
			}
		}).Should(Succeed())

		channels.Recover(path)
		Eventually(func() []notify.Document { return documents(path) }).Should(HaveLen(1))
		Expect(documents(path)[0].Segment).To(Equal("enterprise"))
		Consistently(func() []notify.Document { return documents(path) }, "2s").Should(HaveLen(1))
	})

	It("neither loses nor repeats notifications across a restart of the notifier", func() {
		ns := newNamespace()
		path := hook(ns, "audit")
		configure(ns, map[string]string{
			"service.webhook.audit": "url: " + channels.URL + path,
			"subscriptions":         "- recipients: [audit]",
		}, nil)
		exp := createExperiment(ns, "checkout", nil, nil)
		setStatus(exp, addRollback("enterprise", "express"))
		Eventually(func() []notify.Document { return documents(path) }).Should(HaveLen(1))
		// Delivery is at least once: stop only after the state records it.
		Eventually(func(g Gomega) {
			st := state(exp)
			g.Expect(st).NotTo(BeNil())
			for _, es := range st.Events {
				for _, d := range es.Deliveries {
					g.Expect(d.DeliveredAt).NotTo(BeNil(), d.Service)
				}
			}
		}).Should(Succeed())

		n.stop()
		By("while the notifier is down, another variant is rolled back")
		setStatus(exp, addRollback("new-customers", "one-page"))
		n = startNotifierWith(nil)

		Eventually(func() []notify.Document { return documents(path) }).Should(HaveLen(2))
		Consistently(func() []notify.Document { return documents(path) }, "2s").Should(HaveLen(2))
		docs := documents(path)
		Expect([]string{docs[0].Variant, docs[1].Variant}).To(Equal([]string{"express", "one-page"}))
	})

	It("applies namespace subscriptions by label selector and global subscriptions to every experiment", func() {
		ns := newNamespace()
		local := hook(ns, "local")
		// The global configuration lives in the manager's namespace; it is
		// shared by every spec, so it is written once.
		cm := &corev1.ConfigMap{}
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: globalNamespace, Name: notify.ConfigMapName}, cm); err != nil {
			configure(globalNamespace, map[string]string{
				"service.webhook.platform": "url: " + channels.URL + "/hooks/platform",
				"subscriptions":            "- recipients: [platform]\n  triggers: [on-stalled]",
			}, nil)
		}
		configure(ns, map[string]string{
			"service.webhook.local": "url: " + channels.URL + local,
			"subscriptions":         "- recipients: [local]\n  selector: team=checkout",
		}, nil)
		mine := createExperiment(ns, "checkout", map[string]string{"team": "checkout"}, nil)
		theirs := createExperiment(ns, "search", map[string]string{"team": "search"}, nil)
		stalled := func(st *cxv1.CXExperimentStatus) {
			st.Phase = cxv1.PhaseFailed
			st.Conditions = append(st.Conditions, metav1.Condition{Type: "Stalled", Status: metav1.ConditionTrue, Reason: "InvalidSpec", Message: "spec.steps is invalid", LastTransitionTime: metav1.Now()})
		}
		setStatus(mine, stalled)
		setStatus(theirs, stalled)

		Eventually(func() []string { return triggersOf(documents(local)) }).Should(Equal([]string{"on-stalled"}))
		Eventually(func() []string {
			var names []string
			for _, d := range documents("/hooks/platform") {
				if d.Experiment.Namespace == ns {
					names = append(names, d.Experiment.Name)
				}
			}
			return names
		}).Should(ConsistOf("checkout", "search"))
		Consistently(func() int { return len(documents(local)) }, "1s").Should(Equal(1))
		Expect(documents(local)[0].Experiment.Name).To(Equal("checkout"))
	})

	It("tells of a sample-ratio mismatch, a wait for promotion and a promotion", func() {
		ns := newNamespace()
		path := hook(ns, "all")
		configure(ns, map[string]string{
			"service.webhook.all": "url: " + channels.URL + path,
			"subscriptions":       "- recipients: [all]",
		}, nil)
		exp := createExperiment(ns, "checkout", nil, nil)
		setStatus(exp, func(st *cxv1.CXExperimentStatus) {
			st.Conditions = append(st.Conditions, metav1.Condition{Type: "SampleRatioMismatch", Status: metav1.ConditionTrue, Reason: "SampleRatioMismatch",
				Message: "one-page got 31% of the responses in enterprise for 25% of the traffic", LastTransitionTime: metav1.Now()})
		})
		Eventually(func() []string { return triggersOf(documents(path)) }).Should(Equal([]string{"on-sample-ratio-mismatch"}))
		Expect(documents(path)[0].Message).To(ContainSubstring("31% of the responses"))

		setStatus(exp, func(st *cxv1.CXExperimentStatus) {
			st.CurrentStep, st.StepWeight = 2, 50
			st.Conditions = append(st.Conditions, metav1.Condition{Type: cxv1.ConditionReady, Status: metav1.ConditionTrue, Reason: cxv1.ReasonAwaitingPromotion,
				Message: "every variant is non-inferior", LastTransitionTime: metav1.Now()})
		})
		Eventually(func() []string { return triggersOf(documents(path)) }).Should(Equal([]string{"on-sample-ratio-mismatch", "on-awaiting-promotion"}))

		setStatus(exp, func(st *cxv1.CXExperimentStatus) {
			now := metav1.Now()
			st.Phase, st.CompletedAt = cxv1.PhaseSucceeded, &now
			st.Segments = []cxv1.SegmentStatus{{Name: "enterprise", Promoted: "one-page"}, {Name: "new-customers"}}
			st.Conditions = nil
		})
		Eventually(func() []string { return triggersOf(documents(path)) }).Should(Equal([]string{"on-sample-ratio-mismatch", "on-awaiting-promotion", "on-promoted"}))
		promoted := documents(path)[2]
		Expect(promoted.Promoted).To(Equal([]notify.SegmentChoice{{Segment: "enterprise", Variant: "one-page"}, {Segment: "new-customers", Variant: "control"}}))
	})

	It("gives a hung receiver up after the timeout, without holding back the others", func() {
		ns := newNamespace()
		slow, fast := hook(ns, "slow"), hook(ns, "fast")
		configure(ns, map[string]string{
			"service.webhook.slow": "url: " + channels.URL + slow,
			"service.webhook.fast": "url: " + channels.URL + fast,
			"subscriptions":        "- recipients: [slow]\n  selector: receiver=slow\n- recipients: [fast]\n  selector: receiver=fast",
		}, nil)
		channels.Hang(slow)
		DeferCleanup(func() { channels.Recover(slow) })
		// A timeout well beyond the fast receiver's wait: a notifier that
		// delivered one experiment at a time would keep fast waiting for it.
		const timeout = 15 * time.Second
		n.stop()
		n = startNotifierWith(func(n *notify.Notifier) { n.Timeout = timeout })
		a := createExperiment(ns, "a", map[string]string{"receiver": "slow"}, nil)
		setStatus(a, addRollback("enterprise", "express"))
		Eventually(func() int { return channels.Hanging(slow) }).Should(BeNumerically(">", 0), "the slow receiver holds a delivery")
		b := createExperiment(ns, "b", map[string]string{"receiver": "fast"}, nil)
		setStatus(b, addRollback("enterprise", "express"))
		Eventually(func() []notify.Document { return documents(fast) }, timeout*2/3).Should(HaveLen(1))
		Eventually(func(g Gomega) {
			st := state(a)
			g.Expect(st).NotTo(BeNil())
			for _, es := range st.Events {
				g.Expect(es.Deliveries[0].LastError).To(ContainSubstring("did not answer in time"))
			}
		}).Should(Succeed())
	})

	It("records a Warning on the experiment when a notification is given up", func() {
		ns := newNamespace()
		path := hook(ns, "gone")
		configure(ns, map[string]string{
			"service.webhook.gone": "url: " + channels.URL + path,
			"subscriptions":        "- recipients: [gone]",
		}, nil)
		n.stop()
		// The rollback's time is stored to the second; 8 s leaves the
		// notifier time to see the event before it is too old to send.
		n = startNotifierWithMaxAge(8 * time.Second)
		channels.Fail(path, 410)
		DeferCleanup(func() { channels.Recover(path) })
		exp := createExperiment(ns, "checkout", nil, nil)
		dropped := metrics.NotificationsDropped.WithLabelValues("on-rolled-back", "gone")
		before := testutil.ToFloat64(dropped)
		setStatus(exp, addRollback("enterprise", "express"))
		Eventually(func() float64 { return testutil.ToFloat64(dropped) - before }, "40s").Should(Equal(1.0))
		Eventually(func(g Gomega) {
			evs := &eventsv1.EventList{}
			g.Expect(k8s.List(context.Background(), evs, client.InNamespace(ns))).To(Succeed())
			var notes []string
			for _, e := range evs.Items {
				if e.Reason == "NotificationDropped" {
					notes = append(notes, e.Note)
				}
			}
			g.Expect(notes).To(ContainElement(And(ContainSubstring("on-rolled-back notification to gone given up"), ContainSubstring("410"))))
		}).Should(Succeed())
	})
})

// startNotifierWithMaxAge starts a notifier that gives up after maxAge.
func startNotifierWithMaxAge(maxAge time.Duration) *notifier {
	return startNotifierWith(func(n *notify.Notifier) { n.MaxAge, n.RetryBase = maxAge, 200*time.Millisecond })
}
