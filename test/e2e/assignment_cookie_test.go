package e2e

import (
	"net/http/cookiejar"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/assignment"
	"github.com/rapport-dev/rapport/test/utils/wire"
)

var _ = Describe("The signed assignment cookie on the wire", func() {
	It("is set by the gateway with the variant that served the customer, where the gateway applies backendRef filters", func() {
		s := newShop()
		exp := s.experiment("checkout-redesign", []string{"one-page"}, []string{"enterprise"}, 50)
		insecure := false // the suite's proxy listens on plain HTTP
		exp.Spec.Traffic.GatewayAPI.AssignmentCookie = &cxv1.AssignmentCookie{Secure: &insecure}
		start(exp)
		// The child route carries the cookie on each variant's backendRef.
		route := &gwv1.HTTPRoute{}
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, childRoute(exp), route)).To(Succeed())
			g.Expect(route.Spec.Rules).NotTo(BeEmpty())
			g.Expect(route.Spec.Rules[0].BackendRefs).To(HaveEach(HaveField("Filters", ContainElement(
				HaveField("Type", gwv1.HTTPRouteFilterResponseHeaderModifier)))))
		}).Should(Succeed())
		// The split on the wire is unchanged by the cookie.
		split := expectSplit(s.req("enterprise"), shares(50, "one-page"))
		Expect(split.Replies).NotTo(BeEmpty())

		name := assignment.CookieName(exp.Name)
		backendFilters := features.Has(wire.FeatureBackendRequestHeaderModification)
		set, right := 0, 0
		const customersN = 100
		for range customersN {
			jar, _ := cookiejar.New(nil)
			reply, err := customers.Get(ctx, s.req("enterprise"), jar)
			Expect(err).NotTo(HaveOccurred())
			for _, c := range jar.Cookies(customers.URL()) {
				if c.Name != name {
					continue
				}
				set++
				a, err := assignment.Parse(c.Value)
				Expect(err).NotTo(HaveOccurred(), "the cookie holds an assignment: %s", c.Value)
				if a.Variant == variantOf(reply.Backend) && a.Segment == "enterprise" && a.Experiment == exp.Name {
					right++
				}
			}
		}
		if !backendFilters {
			// Traefik v3.6 turns only rule filters into middlewares: no
			// cookie arrives (docs/operations.md, docs/measurement.md).
			AddReportEntry("assignmentCookie", "the gateway does not report "+wire.FeatureBackendRequestHeaderModification+
				": it ignores backendRef filters, so customers get no assignment cookie")
			Expect(set).To(BeZero(), "an assignment cookie arrived though the gateway does not report %s: update the suite's expectations",
				wire.FeatureBackendRequestHeaderModification)
			return
		}
		Expect(set).To(Equal(customersN), "every customer gets the cookie")
		Expect(right).To(Equal(customersN), "each cookie names the variant that served the customer")
	})
})
