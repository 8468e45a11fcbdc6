package reliability

import (
	"context"
	"encoding/json"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/notify"
	"github.com/rapport-dev/rapport/test/utils"
)

var _ = Describe("A notification receiver that hangs", func() {
	It("delays no rollback, and gets the rollback's notification once it answers", func() {
		ns, token := shop()
		channels := utils.StartChannels()
		defer channels.Close()
		path := "/hooks/" + ns
		channels.Hang(path)
		Expect(k8s.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: notify.ConfigMapName},
			Data: map[string]string{
				"service.webhook.audit": "url: " + channels.URL + path,
				"subscriptions":         "- recipients: [audit]\n  triggers: [on-rolled-back]",
			},
		})).To(Succeed())
		mgr, err := utils.StartManager(ctx, utils.ManagerOptions{Kubeconfig: cp.Kubeconfig, Args: []string{"--notifications-timeout=3s"}})
		Expect(err).NotTo(HaveOccurred())
		defer mgr.Stop()
		logOnFailure(mgr)

		Expect(k8s.Create(ctx, experiment(ns, 6*time.Second))).To(Succeed())
		Eventually(func() cxv1.ExperimentPhase { return getExp(ns).Status.Phase }).Should(Equal(cxv1.PhaseProgressing))
		runCtx, stop := context.WithCancel(ctx)
		defer stop()
		mon := newMonitor(ns)
		go mon.run(runCtx)
		f := newFeeder(ns, token, 31, func() []string { return []string{mgr.CollectorURL} })
		fed := make(chan struct{})
		go func() { defer close(fed); f.run(runCtx, mon.sample) }()

		// The rollback, decided and applied while the receiver hangs.
		var rb cxv1.Rollback
		Eventually(func(g Gomega) {
			rbs := getExp(ns).Status.Rollbacks
			g.Expect(rbs).To(HaveLen(1))
			g.Expect(rbs[0].TrafficRestoredAt).NotTo(BeNil())
			g.Expect(rbs[0].DecisiveResponseAt).NotTo(BeNil())
			rb = rbs[0]
		}, 3*time.Minute).Should(Succeed(), describe(ns))
		latency := rb.TrafficRestoredAt.Sub(rb.DecisiveResponseAt.Time)
		GinkgoWriter.Printf("rollback latency with a hung notification receiver: %s\n", latency)
		Expect(latency).To(BeNumerically("<", 5*time.Second), "the rollback waited for the notification")
		Consistently(func() int { return len(channels.Delivered(path)) }, 4*time.Second).Should(BeZero(), "the receiver hangs: nothing is delivered")

		channels.Recover(path)
		var doc notify.Document
		Eventually(func(g Gomega) {
			got := channels.Delivered(path)
			g.Expect(got).To(HaveLen(1))
			g.Expect(json.Unmarshal(got[0].Body, &doc)).To(Succeed())
		}, time.Minute).Should(Succeed())
		Expect(doc.Trigger).To(Equal("on-rolled-back"))
		Expect(doc.Segment).To(Equal("enterprise"))
		Expect(doc.Variant).To(Equal("one-page"))
		Expect(doc.Evidence).To(Equal(rb.Evidence))

		// The run goes on to its end; the notification is not repeated.
		Eventually(func() bool { return ended(ns) }, 3*time.Minute).Should(BeTrue(), describe(ns, f))
		finish(f, fed, stop)
		Expect(outcome(getExp(ns))).To(Equal("Succeeded enterprise/one-page=RolledBack new-customers/one-page=Promoted"))
		Expect(channels.Delivered(path)).To(HaveLen(1))
	})
})
