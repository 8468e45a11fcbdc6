package controller

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/history"
)

var _ = Describe("CXExperiment history", func() {
	It("records each segment's and variant's history in an owned ConfigMap, with the rollback's verdict change", func() {
		s := newShop()
		exp := s.start(s.experiment("checkout-redesign", "enterprise", "new-customers"))
		for _, seg := range []string{"enterprise", "new-customers"} {
			s.post("checkout-redesign", scores("control", seg, firstStepControl(500), 86))
			s.post("checkout-redesign", scores("one-page", seg, 500, 70))
		}
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseRolledBack))

		var h *history.History
		cm := &corev1.ConfigMap{}
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, keyOf(s.ns, "checkout-redesign-history"), cm)).To(Succeed())
			var err error
			h, err = history.Decode(cm.BinaryData[history.Key])
			g.Expect(err).NotTo(HaveOccurred())
			for _, seg := range []string{"enterprise", "new-customers"} {
				sr := h.Find(seg, "one-page")
				g.Expect(sr).NotTo(BeNil(), "a series for one-page in %s", seg)
				g.Expect(sr.Points[len(sr.Points)-1].Verdict).To(Equal(cxv1.VerdictInferior), "the last point is the rollback's")
				g.Expect(sr.Points[len(sr.Points)-1].Weight).To(BeZero())
			}
		}).Should(Succeed())

		exp = s.get(exp.Name)
		Expect(metav1.IsControlledBy(cm, exp)).To(BeTrue(), "owned by the experiment, so it is garbage-collected with it")
		Expect(cm.Labels).To(HaveKeyWithValue(cxv1.LabelManagedBy, "rapport"))
		Expect(cm.Labels).To(HaveKeyWithValue(cxv1.LabelExperiment, "checkout-redesign"))
		Expect(cm.Data).To(HaveKeyWithValue(history.RunKey, "1"))
		Expect(h.Run).To(Equal(int32(1)))
		Expect(h.Series).To(HaveLen(4), "control and one-page in two segments")
		for _, seg := range []string{"enterprise", "new-customers"} {
			control, variant := h.Find(seg, "control"), h.Find(seg, "one-page")
			Expect(control.Points).NotTo(BeEmpty())
			Expect(control.Points[len(control.Points)-1].Weight).To(Equal(int32(100)), "the control takes the traffic back")
			// The verdict changed during the run: the first points are
			// from before the evidence decided.
			Expect(variant.Points[0].Verdict).NotTo(Equal(cxv1.VerdictInferior))
			Expect(variant.Points[0].Weight).To(Equal(int32(10)))
			last := variant.Points[len(variant.Points)-1]
			Expect(last.Upper).NotTo(BeNil())
			Expect(*last.Upper).To(BeNumerically("<", -3), "decided: the whole interval is below -maxDrop")
			Expect(last.Responses).To(BeNumerically(">=", 100))
			Expect(last.Epoch).To(BeNumerically(">=", 1))
			Expect(last.Step).To(Equal(int32(1)))
			Expect(len(variant.Points)).To(BeNumerically("<=", history.MaxPoints))
		}
	})
})
