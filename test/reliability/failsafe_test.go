package reliability

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/sim"
	"github.com/rapport-dev/rapport/test/utils"
)

var _ = Describe("Fail-safe stops", func() {
	// partialRollback runs the scenario until enterprise is rolled back
	// while new customers still see the variant.
	partialRollback := func(mgr *utils.Manager) (string, *monitor, context.CancelFunc) {
		ns, token := shop()
		exp := experiment(ns, time.Hour) // step 1 holds: new customers stay at 10%
		Expect(k8s.Create(ctx, exp)).To(Succeed())
		Eventually(func() cxv1.ExperimentPhase { return getExp(ns).Status.Phase }).Should(Equal(cxv1.PhaseProgressing))
		runCtx, stop := context.WithCancel(ctx)
		mon := newMonitor(ns)
		go mon.run(runCtx)
		f := newFeeder(ns, token, 5, func() []string { return []string{mgr.CollectorURL} })
		go f.run(runCtx, mon.sample)
		Eventually(func() [2]int32 {
			w := mon.weights()
			return [2]int32{w["enterprise"]["control"], w["new-customers"]["one-page"]}
		}, 3*time.Minute).Should(Equal([2]int32{100, 10}), "enterprise back on the control, new customers at step 1")
		return ns, mon, stop
	}

	It("leaves traffic where it is, never on a rolled-back variant, when the operator goes away", func() {
		mgr, err := utils.StartManager(ctx, utils.ManagerOptions{Kubeconfig: cp.Kubeconfig})
		Expect(err).NotTo(HaveOccurred())
		logOnFailure(mgr)
		ns, mon, stop := partialRollback(mgr)
		defer stop()
		mgr.Kill() // the operator is uninstalled, or crashes for good
		want := map[string]map[string]int32{"enterprise": {"control": 100}, "new-customers": {"control": 90, "one-page": 10}}
		Consistently(func() map[string]map[string]int32 {
			w, err := sim.Weights(ctx, k8s, getExp(ns))
			Expect(err).NotTo(HaveOccurred())
			return w
		}, 3*time.Second).Should(Equal(want), "routes stay as the operator left them: enterprise on the control")

		// Deleting the experiment without the operator waits on its
		// finalizer; the operator, back, restores the route and lets go.
		Expect(k8s.Delete(ctx, getExp(ns))).To(Succeed())
		Consistently(func() bool { return getExp(ns).DeletionTimestamp != nil }, 2*time.Second).Should(BeTrue())
		back, err := utils.StartManager(ctx, utils.ManagerOptions{Kubeconfig: cp.Kubeconfig})
		Expect(err).NotTo(HaveOccurred())
		logOnFailure(back)
		defer back.Stop()
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "checkout-redesign"}, &cxv1.CXExperiment{}))
		}).Should(BeTrue())
		Expect(apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "checkout-redesign-rapport"}, &gwv1.HTTPRoute{}))).To(BeTrue(),
			"the child route goes with the experiment: everyone is on the control")
		_ = mon
	})

	It("lets a namespace with a running experiment be deleted", func() {
		kcm, err := cp.StartControllerManager()
		Expect(err).NotTo(HaveOccurred())
		defer kcm.Stop()
		mgr, err := utils.StartManager(ctx, utils.ManagerOptions{Kubeconfig: cp.Kubeconfig})
		Expect(err).NotTo(HaveOccurred())
		logOnFailure(mgr)
		defer mgr.Stop()
		ns, mon, stop := partialRollback(mgr)
		stop()
		Expect(k8s.Delete(ctx, &corev1.Namespace{ObjectMeta: metaName(ns)})).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Name: ns}, &corev1.Namespace{}))
		}, 2*time.Minute).Should(BeTrue(), "the experiment's finalizer does not block the namespace")
		mon.checkMonotone([]int32{10, 30, 50})
	})
})
