package controller

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// seriesOf counts the rapport_* series labelled with a namespace.
func seriesOf(ns string) map[string]int {
	fams, err := ctrlmetrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	out := map[string]int{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "namespace" && l.GetValue() == ns {
					out[f.GetName()]++
				}
			}
		}
	}
	return out
}

var _ = Describe("CXExperiment metrics", func() {
	It("exposes an experiment's phase, weights and scores, and removes its series when it is deleted", func() {
		s := newShop()
		s.start(s.experiment("checkout-redesign", "enterprise"))
		s.post("checkout-redesign", scores("control", "enterprise", 300, 86))
		s.post("checkout-redesign", scores("one-page", "enterprise", 300, 86))
		Eventually(func() map[string]int { return seriesOf(s.ns) }).Should(And(
			HaveKey("rapport_experiment_phase"),
			HaveKey("rapport_traffic_weight_ratio"),
			HaveKey("rapport_satisfaction_score_points"),
			HaveKey("rapport_satisfaction_responses"),
			HaveKey("rapport_feedback_responses_total"),
		))
		Expect(k8sDelete(s, "checkout-redesign")).To(Succeed())
		Eventually(s.deleted("checkout-redesign")).Should(BeTrue())
		Eventually(func() map[string]int { return seriesOf(s.ns) }).Should(BeEmpty(), "no series outlive the experiment")
	})
})

func k8sDelete(s *shop, name string) error {
	return k8s.Delete(ctx, &cxv1.CXExperiment{ObjectMeta: metaOf(s.ns, name)})
}
