package e2e

import (
	"context"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/test/utils/wire"
)

// watch sends the requests continuously until the returned function is
// called, which returns how each was served over the whole time.
func watch(rs ...wire.Request) func() []wire.Split {
	runCtx, stop := context.WithCancel(ctx)
	out := make([]wire.Split, len(rs))
	var wg sync.WaitGroup
	for i, r := range rs {
		out[i] = wire.Split{Served: map[string]int{}, Errors: map[string]int{}}
		wg.Go(func() {
			for runCtx.Err() == nil {
				reply, err := customers.Get(runCtx, r, nil)
				if runCtx.Err() != nil {
					return
				}
				out[i].N++
				if err != nil {
					out[i].Errors[err.Error()]++
					continue
				}
				out[i].Served[reply.Backend]++
			}
		})
	}
	return func() []wire.Split {
		stop()
		wg.Wait()
		return out
	}
}

var _ = Describe("Rollback on the wire", func() {
	It("sends a segment's customers back to the control after the decisive answer, while other segments keep their split and the route's other rules keep working", func() {
		s := newShop()
		exp := s.experiment("checkout-redesign", []string{"one-page"}, []string{"enterprise", "new-customers"}, 30)
		start(exp)
		expectSplit(s.req("enterprise"), shares(30, "one-page"))
		expectSplit(s.req("new-customers"), shares(30, "one-page"))

		// Throughout: the parent route's other rule and customers of no
		// segment never see a variant, and every request is answered.
		others := append([]wire.Request{s.storefront()}, s.outsiders()...)
		stop := watch(others...)

		By("enterprise customers answering much worse about one-page")
		s.answer(exp, "enterprise", "control", 100, 90)
		s.answer(exp, "enterprise", "one-page", 100, 10)
		Eventually(func() []cxv1.Rollback { return get(exp).Status.Rollbacks }).Should(ContainElement(And(
			HaveField("Segment", "enterprise"), HaveField("Variant", "one-page"), HaveField("Reason", cxv1.RollbackInferior),
		)), describe(exp))

		expectAllOn("checkout-v1", s.req("enterprise"))
		expectSplit(s.req("new-customers"), shares(30, "one-page"))

		seen := stop()
		for i, r := range others {
			want := "checkout-v1"
			if i == 0 {
				want = "storefront"
			}
			Expect(seen[i].Errors).To(BeEmpty(), "%s during the rollback: %s", r, seen[i])
			Expect(seen[i].Served).To(HaveLen(1), "%s during the rollback: %s", r, seen[i])
			Expect(seen[i].Served).To(HaveKey(want), "%s during the rollback: %s", r, seen[i])
			GinkgoWriter.Printf("during the rollback, %s: %s\n", r, seen[i])
		}
	})
})
