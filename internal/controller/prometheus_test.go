package controller

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/test/utils"
)

// These specs use a real Prometheus server scraping an in-process exporter
// that plays the shop's own instrumentation.
var _ = Describe("CXExperiment measured from Prometheus", Ordered, func() {
	var (
		prom      *utils.PrometheusServer
		responses *prometheus.CounterVec
		errorRate *prometheus.GaugeVec
	)

	BeforeAll(func() {
		bin, err := utils.PrometheusBinary()
		if err != nil {
			if utils.InCI() {
				Fail("no Prometheus server binary in CI: " + err.Error())
			}
			Skip("no Prometheus server binary (run hack/prometheus-bin.sh): " + err.Error())
		}
		reg := prometheus.NewRegistry()
		responses = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shop_csat_responses_total", Help: "CSAT answers."}, []string{"namespace", "variant", "segment", "score"})
		errorRate = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shop_checkout_error_ratio", Help: "5xx share."}, []string{"namespace", "variant"})
		reg.MustRegister(responses, errorRate)
		prom, err = utils.StartPrometheus(ctx, utils.PrometheusOptions{Binary: bin, Gatherer: reg, ScrapeInterval: 200 * time.Millisecond})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { Expect(prom.Stop()).To(Succeed()) })
	})

	// scraped waits until Prometheus has the value an expression should have.
	scraped := func(expr string, want float64) {
		Eventually(func() float64 {
			v, err := prom.Query(ctx, expr)
			if err != nil {
				return -1
			}
			vec, ok := v.(model.Vector)
			if !ok || len(vec) == 0 {
				return -1
			}
			return float64(vec[0].Value)
		}).Should(Equal(want))
	}

	answer := func(ns, variant, segment string, n int, satisfiedPct int) {
		for _, r := range scores(variant, segment, n, satisfiedPct) {
			responses.WithLabelValues(ns, variant, segment, fmt.Sprint(r.Score)).Inc()
		}
	}

	metricExperiment := func(s *shop, address string) *cxv1.CXExperiment {
		Expect(k8s.Create(ctx, &cxv1.SatisfactionMetric{
			ObjectMeta: metav1.ObjectMeta{Name: "shop-csat", Namespace: s.ns},
			Spec: cxv1.SatisfactionMetricSpec{Prometheus: cxv1.PrometheusQuery{
				Address: address,
				Query:   `sum by (score) (shop_csat_responses_total{namespace="{{ .Namespace }}",variant="{{ .Variant }}",segment="{{ .Segment }}"})`,
				Timeout: &metav1.Duration{Duration: 2 * time.Second},
			}},
		})).To(Succeed())
		exp := s.experiment("checkout-redesign", "enterprise")
		exp.Spec.Satisfaction.Source = cxv1.SatisfactionSource{MetricRef: &cxv1.LocalObjectRef{Name: "shop-csat"}}
		return exp
	}

	It("rolls back a variant whose CSAT, read from Prometheus, dropped", func() {
		s := newShop()
		// The answers are in Prometheus before the experiment starts: a
		// scrape in the middle of writing them would let the controller
		// decide on part of them (the rollback would record fewer responses).
		answer(s.ns, "control", "enterprise", 1000, 86)
		answer(s.ns, "one-page", "enterprise", 1000, 70)
		scraped(fmt.Sprintf(`sum(shop_csat_responses_total{namespace=%q})`, s.ns), 2000)
		s.create(metricExperiment(s, prom.URL))
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseRolledBack))
		rb := s.get("checkout-redesign").Status.Rollbacks
		Expect(rb).To(HaveLen(1))
		Expect(rb[0].Responses).To(Equal(int64(1000)))
	})

	It("never promotes on missing data and says why when Prometheus cannot be read", func() {
		s := newShop()
		exp := metricExperiment(s, "http://127.0.0.1:1") // nothing listens there
		exp.Spec.OnInconclusive = cxv1.InconclusiveRollback
		exp.Spec.Steps[0].MaxDuration = &metav1.Duration{Duration: 3 * time.Second}
		s.start(exp)
		Eventually(func() string {
			c := condition(s.get("checkout-redesign"), cxv1.ConditionMeasured)
			if c == nil || c.Status != metav1.ConditionFalse {
				return ""
			}
			return c.Message
		}).Should(ContainSubstring("cannot reach"))
		Expect(s.get("checkout-redesign").Status.CurrentStep).To(Equal(int32(1)))
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseRolledBack), "onInconclusive applies at maxDuration")
		Expect(s.get("checkout-redesign").Status.Rollbacks[0].Reason).To(Equal(cxv1.RollbackInconclusive))
	})

	It("rolls back a variant whose guardrail breaches, and holds while a guardrail has no data", func() {
		s := newShop()
		exp := s.experiment("checkout-redesign", "enterprise")
		exp.Spec.Guardrails = []cxv1.Guardrail{{
			Name: "error-rate",
			Prometheus: cxv1.PrometheusQuery{Address: prom.URL,
				Query: `max(shop_checkout_error_ratio{namespace="` + s.ns + `",variant="{{ .Variant }}"})`},
			Max: ptr("0.01"),
		}}
		s.start(exp)
		s.post("checkout-redesign", scores("control", "enterprise", firstStepControl(1500), 86))
		s.post("checkout-redesign", scores("one-page", "enterprise", 1500, 87))
		Consistently(func() int32 { return s.get("checkout-redesign").Status.CurrentStep }, 2*time.Second).
			Should(Equal(int32(1)), "a guardrail without data blocks advancing")

		errorRate.WithLabelValues(s.ns, "one-page").Set(0.034)
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseRolledBack))
		rb := s.get("checkout-redesign").Status.Rollbacks[0]
		Expect(rb.Reason).To(Equal(cxv1.RollbackGuardrail))
		Expect(rb.Evidence).To(Equal("error-rate 0.034 > max 0.01"))
	})

	It("reports a SatisfactionMetric whose query does not parse", func() {
		s := newShop()
		Expect(k8s.Create(ctx, &cxv1.SatisfactionMetric{
			ObjectMeta: metav1.ObjectMeta{Name: "broken", Namespace: s.ns},
			Spec: cxv1.SatisfactionMetricSpec{Prometheus: cxv1.PrometheusQuery{
				Address: prom.URL, Query: `sum by (score) (x{variant="{{ .Varient }}"})`}},
		})).To(Succeed())
		Eventually(func() string {
			m := &cxv1.SatisfactionMetric{}
			Expect(k8s.Get(ctx, keyOf(s.ns, "broken"), m)).To(Succeed())
			for _, c := range m.Status.Conditions {
				if c.Type == cxv1.ConditionReady && c.Status == metav1.ConditionFalse {
					return c.Message
				}
			}
			return ""
		}).Should(ContainSubstring("Varient"))
	})
})
