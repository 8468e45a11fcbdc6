package e2e

import (
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"slices"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/test/utils/wire"
)

// variantOf is the variant a backend serves.
func variantOf(backend string) string {
	for v, svc := range variantService {
		if svc == backend {
			return v
		}
	}
	return ""
}

var _ = Describe("Requests as the backends see them", func() {
	It("tags routed requests with their segment, and with their variant where the gateway supports backend filters", func() {
		s := newShop()
		exp := s.experiment("checkout-redesign", []string{"one-page"}, []string{"enterprise"}, 50)
		exp.Spec.Traffic.GatewayAPI.TagRequests = true
		start(exp)
		split := expectSplit(s.req("enterprise"), shares(50, "one-page"))
		// x-rapport-variant is set by a filter on each backendRef (Extended
		// support in Gateway API); x-rapport-segment also by a filter on the
		// rule (Core).
		variantTags := features.Has(wire.FeatureBackendRequestHeaderModification)
		if !variantTags {
			AddReportEntry("tagRequests", "the gateway does not report "+wire.FeatureBackendRequestHeaderModification+
				": backends get x-rapport-segment but not x-rapport-variant (see docs/operations.md)")
		}
		for _, r := range split.Replies {
			Expect(r.Segment).To(Equal("enterprise"), "x-rapport-segment received by %s", r.Backend)
			if variantTags {
				Expect(r.Variant).To(Equal(variantOf(r.Backend)), "x-rapport-variant received by %s", r.Backend)
			} else {
				Expect(r.Variant).To(BeEmpty(), "x-rapport-variant received by %s, though the gateway does not report %s: update the suite's expectations",
					r.Backend, wire.FeatureBackendRequestHeaderModification)
			}
		}
		for _, o := range s.outsiders() {
			reply, err := customers.Get(ctx, o, nil)
			Expect(err).NotTo(HaveOccurred())
			Expect(reply).To(And(HaveField("Segment", ""), HaveField("Variant", "")), "requests Rapport does not route carry no tags: %s", o)
		}
	})

	It("keeps a customer on one variant with sessionPersistence where the gateway implements it, and reports the realised share", func() {
		s := newShop()
		exp := s.experiment("checkout-redesign", []string{"one-page"}, []string{"enterprise"}, 50)
		exp.Spec.Traffic.GatewayAPI.Stickiness = &cxv1.Stickiness{Cookie: &cxv1.CookieStickiness{Name: "cx-variant"}}
		start(exp)
		// Status is written ahead of the route: wait for the route.
		route := &gwv1.HTTPRoute{}
		Eventually(func() error { return k8s.Get(ctx, childRoute(exp), route) }).Should(Succeed())
		Expect(route.Spec.Rules[0].SessionPersistence).NotTo(BeNil(), "the child route asks for session persistence")
		// New customers (no cookie) are split by the weight either way.
		expectSplit(s.req("enterprise"), shares(50, "one-page"))

		const visitors, visits = 200, 5
		r := s.req("enterprise")
		cookieSet, mixed, firstOnVariant := 0, 0, 0
		for range visitors {
			jar, _ := cookiejar.New(nil)
			var seen []string
			for range visits {
				reply, err := customers.Get(ctx, r, jar)
				Expect(err).NotTo(HaveOccurred())
				seen = append(seen, reply.Backend)
			}
			if slices.ContainsFunc(jar.Cookies(customers.URL()), func(c *http.Cookie) bool { return c.Name == "cx-variant" }) {
				cookieSet++
			}
			if len(slices.Compact(slices.Clone(seen))) > 1 {
				mixed++
			}
			if seen[0] == "checkout-v2" {
				firstOnVariant++
			}
		}
		realised := float64(firstOnVariant) / visitors
		report := fmt.Sprintf("%d visitors x %d visits: session cookie set for %d, %d saw both variants; realised share of one-page among visitors %.3f (weight 0.50)",
			visitors, visits, cookieSet, mixed, realised)
		AddReportEntry("stickiness", report)
		GinkgoWriter.Println(report)
		Expect(realised).To(BeNumerically("~", 0.5, wire.Tolerance(visitors, 0.5, z)), report)
		if cookieSet == 0 {
			// The gateway ignores sessionPersistence (Traefik v3.6 does):
			// each request is split by the weight, so returning customers
			// see both variants. docs/operations.md says what to use instead.
			AddReportEntry("stickiness", "the gateway set no session cookie: it does not implement HTTPRoute sessionPersistence")
			Expect(mixed).To(BeNumerically(">", 0), "without a session cookie, returning customers are split per request")
			return
		}
		Expect(cookieSet).To(Equal(visitors), "the gateway sets the session cookie for every visitor")
		Expect(mixed).To(BeZero(), "every visitor stays on the variant of the first visit")
	})
})
