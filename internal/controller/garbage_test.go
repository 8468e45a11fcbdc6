package controller

import (
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

var _ = Describe("CXExperiment with a Prometheus that answers garbage", func() {
	It("never advances on garbage, says why, and holds at maxDuration with onInconclusive: Hold", func() {
		garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"score":"banana"},"value":[1,"12"]}]}}`)
		}))
		defer garbage.Close()
		s := newShop()
		Expect(k8s.Create(ctx, &cxv1.SatisfactionMetric{
			ObjectMeta: metav1.ObjectMeta{Name: "shop-csat", Namespace: s.ns},
			Spec: cxv1.SatisfactionMetricSpec{Prometheus: cxv1.PrometheusQuery{
				Address: garbage.URL, Query: `sum by (score) (x{variant="{{ .Variant }}"})`}},
		})).To(Succeed())
		exp := s.experiment("checkout-redesign", "enterprise")
		exp.Spec.Satisfaction.Source = cxv1.SatisfactionSource{MetricRef: &cxv1.LocalObjectRef{Name: "shop-csat"}}
		exp.Spec.OnInconclusive = cxv1.InconclusiveHold
		exp.Spec.Steps[0].MaxDuration = &metav1.Duration{Duration: 2 * time.Second}
		s.start(exp)

		Eventually(func() string {
			c := condition(s.get("checkout-redesign"), cxv1.ConditionMeasured)
			if c == nil || c.Status != metav1.ConditionFalse {
				return ""
			}
			return c.Message
		}).Should(ContainSubstring(`"banana" is not an integer score`))
		Eventually(s.waiting("checkout-redesign")).Should(Equal(cxv1.WaitingInconclusive))
		got := s.get("checkout-redesign")
		Expect(got.Status.CurrentStep).To(Equal(int32(1)))
		Expect(got.Status.Segments[0].Variants[1].Verdict).To(Equal(cxv1.VerdictInsufficientData), "garbage is never read as a score")
		Expect(s.weights("checkout-redesign")["enterprise"]).To(Equal(map[string]int32{"control": 90, "one-page": 10}))
	})
})
