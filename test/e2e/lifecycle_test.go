package e2e

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// expectRouteAsCreated checks that the parent route's spec is the user's.
func (s *shop) expectRouteAsCreated() {
	GinkgoHelper()
	route := &gwv1.HTTPRoute{}
	Expect(k8s.Get(ctx, client.ObjectKeyFromObject(s.route), route)).To(Succeed())
	Expect(route.Spec).To(Equal(s.route.Spec), "the parent route is the user's again")
}

var _ = Describe("Leaving", func() {
	It("puts every customer back on the control when the experiment is deleted", func() {
		s := newShop()
		exp := s.experiment("checkout-redesign", []string{"one-page"}, []string{"enterprise", "new-customers"}, 30)
		start(exp)
		expectSplit(s.req("enterprise"), shares(30, "one-page"))
		expectSplit(s.req("new-customers"), shares(30, "one-page"))

		deleteExperiment(exp)
		Expect(apierrors.IsNotFound(k8s.Get(ctx, childRoute(exp), &gwv1.HTTPRoute{}))).To(BeTrue(), "the child route is gone")
		s.expectRouteAsCreated()
		expectAllOn("checkout-v1", s.req("enterprise"), s.req("new-customers"))
		expectAllOn("storefront", s.storefront())
	})

	It("leaves customers where they are, never on a rolled-back variant, when the operator goes away; the returning operator restores the control", func() {
		s := newShop()
		exp := s.experiment("checkout-redesign", []string{"one-page"}, []string{"enterprise", "new-customers"}, 30)
		start(exp)
		expectSplit(s.req("enterprise"), shares(30, "one-page"))
		expectSplit(s.req("new-customers"), shares(30, "one-page"))
		s.answer(exp, "enterprise", "control", 100, 90)
		s.answer(exp, "enterprise", "one-page", 100, 10)
		Eventually(func() []cxv1.Rollback { return get(exp).Status.Rollbacks }).Should(ContainElement(And(
			HaveField("Segment", "enterprise"), HaveField("TrafficRestoredAt", Not(BeNil())),
		)), describe(exp))
		expectAllOn("checkout-v1", s.req("enterprise"))
		expectSplit(s.req("new-customers"), shares(30, "one-page"))

		By("killing the operator")
		DeferCleanup(func() {
			if mgr.Exited() { // the spec failed before the operator came back
				startManager()
			}
		})
		mgr.Kill()
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			expectAllOn("checkout-v1", s.req("enterprise"))
			expectSplit(s.req("new-customers"), shares(30, "one-page"))
		}

		By("deleting the experiment while the operator is away: its finalizer waits, traffic stays")
		Expect(k8s.Delete(ctx, exp)).To(Succeed())
		Expect(get(exp).DeletionTimestamp).NotTo(BeNil())
		expectAllOn("checkout-v1", s.req("enterprise"))
		expectSplit(s.req("new-customers"), shares(30, "one-page"))

		By("starting the operator again")
		startManager()
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(exp), &cxv1.CXExperiment{}))
		}).Should(BeTrue())
		s.expectRouteAsCreated()
		expectAllOn("checkout-v1", s.req("enterprise"), s.req("new-customers"))
	})
})
