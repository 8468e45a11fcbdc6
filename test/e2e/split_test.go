package e2e

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/rapport-dev/rapport/test/utils/wire"
)

var _ = Describe("Traffic split on the wire", func() {
	It("splits header, cookie and query-parameter segments by the step weight at every step, and keeps everyone else on the control", func() {
		if !features.Has(wire.FeatureQueryParamMatching) {
			Fail("the gateway does not report " + wire.FeatureQueryParamMatching + "; query-parameter segments need it")
		}
		s := newShop()
		exp := s.experiment("checkout-redesign", []string{"one-page"}, []string{"enterprise", "new-customers", "spring-sale"}, 10, 30, 50)
		start(exp)
		for i, w := range []int32{10, 30, 50} {
			By("step " + string(rune('1'+i)))
			if i > 0 {
				s.advance(exp)
			}
			for _, seg := range exp.Spec.Segments {
				expectSplit(s.req(seg), shares(w, "one-page"))
			}
			expectAllOn("checkout-v1", s.outsiders()...)
			expectAllOn("storefront", s.storefront())
		}
	})

	It("shares a segment between the control and two variants (A/B/n)", func() {
		s := newShop()
		exp := s.experiment("checkout-abn", []string{"one-page", "express"}, []string{"enterprise"}, 30)
		start(exp)
		expectSplit(s.req("enterprise"), shares(30, "one-page", "express"))
		expectAllOn("checkout-v1", s.outsiders()...)
		Expect(get(exp).Status.Segments[0].Variants).To(HaveLen(3))
	})
})
