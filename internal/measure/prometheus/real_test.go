package prometheus

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/measure"
	"github.com/rapport-dev/rapport/internal/rollout"
	"github.com/rapport-dev/rapport/test/utils"
)

// TestRealPrometheus runs the Source and Guardrails against a real Prometheus
// server ($PROMETHEUS_BIN) scraping an in-process exporter every second.
func TestRealPrometheus(t *testing.T) {
	bin := utils.PrometheusBinaryOrSkip(t)
	g := NewWithT(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	reg := prometheus.NewRegistry()
	responses := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shop_csat_responses_total", Help: "Survey responses by score.",
	}, []string{"variant", "segment", "score"})
	errorRate := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "shop_error_rate", Help: "Share of failed requests.",
	}, []string{"variant", "segment"})
	reg.MustRegister(responses, errorRate)
	add := func(variant, segment string, score, n int) {
		responses.WithLabelValues(variant, segment, strconv.Itoa(score)).Add(float64(n))
	}
	add("control", "all", 5, 10)
	add("control", "all", 4, 3)
	add("control", "all", 1, 2)
	add("one-page", "all", 5, 7)
	add("one-page", "all", 2, 1)
	add("control", "vip", 3, 4)
	// one-page in vip has no series at all.
	errorRate.WithLabelValues("one-page", "all").Set(0.034)
	errorRate.WithLabelValues("control", "all").Set(0.004)

	srv, err := utils.StartPrometheus(ctx, utils.PrometheusOptions{Binary: bin, Gatherer: reg})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("stop prometheus: %v", err)
		}
	})

	// scraped returns the total of the counters as Prometheus sees it.
	scraped := func() (float64, error) {
		v, err := srv.Query(ctx, `sum(shop_csat_responses_total)`)
		if err != nil {
			return 0, err
		}
		if vec, ok := v.(model.Vector); ok && len(vec) == 1 {
			return float64(vec[0].Value), nil
		}
		return -1, nil
	}
	waitScraped := func(total float64) {
		t.Helper()
		g.Eventually(scraped).WithTimeout(20*time.Second).WithPolling(100*time.Millisecond).Should(Equal(total), srv.Logs)
	}
	waitScraped(27)

	exp := experiment()
	q := measure.Query{
		Experiment: exp,
		Settings:   csat5,
		Segments:   []string{"all", "vip"},
		Variants:   []string{"control", "one-page"},
		Window:     time.Hour,
	}
	source := func(tmpl string) *Source {
		t.Helper()
		g.Expect(Validate(tmpl)).To(Succeed())
		s, err := NewSource(cxv1.PrometheusQuery{Address: srv.URL, Query: tmpl, Timeout: &metav1.Duration{Duration: 5 * time.Second}}, "")
		g.Expect(err).NotTo(HaveOccurred())
		return s
	}
	const counts = `sum by (score) (shop_csat_responses_total{variant="{{ .Variant }}",segment="{{ .Segment }}"})`

	t.Run("exact counts per score, and a pair without series is missing", func(t *testing.T) {
		g := NewWithT(t)
		res, err := source(counts).Tallies(ctx, q)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.Tallies).To(Equal(measure.Tallies{
			"all": {"control": {2, 0, 0, 3, 10}, "one-page": {0, 1, 0, 0, 7}},
			"vip": {"control": {0, 0, 4, 0, 0}},
		}))
		g.Expect(res.Missing).To(Equal([]string{"vip/one-page"}))

		// New responses are read once scraped.
		add("one-page", "vip", 4, 5)
		add("control", "all", 5, 1)
		waitScraped(33)
		res, err = source(counts).Tallies(ctx, q)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.Tallies.Get("vip", "one-page")).To(Equal([]int64{0, 0, 0, 5, 0}))
		g.Expect(res.Tallies.Get("all", "control")).To(Equal([]int64{2, 0, 0, 3, 11}))
		g.Expect(res.Missing).To(BeEmpty())
	})

	t.Run("increase over the window", func(t *testing.T) {
		g := NewWithT(t)
		// increase() extrapolates; the query must run and give whole counts.
		res, err := source(`sum by (score) (increase(shop_csat_responses_total{variant="{{ .Variant }}",segment="{{ .Segment }}"}[{{ .Window }}]))`).Tallies(ctx, q)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(len(res.Tallies["all"]) + len(res.Missing)).To(BeNumerically(">=", 2))
	})

	t.Run("each allocation epoch is read over its own span", func(t *testing.T) {
		g := NewWithT(t)
		// Each boundary is taken between two scrapes of the same values, so
		// the counters read at it are the stable ones.
		lastScrape := func() (float64, error) {
			v, err := srv.Query(ctx, `max(timestamp(shop_csat_responses_total))`)
			if vec, ok := v.(model.Vector); ok && err == nil && len(vec) == 1 {
				return float64(vec[0].Value), nil
			}
			return 0, err
		}
		boundary := func() time.Time {
			t.Helper()
			at := time.Now()
			g.Eventually(lastScrape).WithTimeout(20*time.Second).WithPolling(50*time.Millisecond).
				Should(BeNumerically(">", float64(at.UnixMilli())/1000), srv.Logs)
			return at
		}
		t0 := boundary()
		add("control", "vip", 5, 6) // epoch 1
		waitScraped(39)
		t1 := boundary()
		add("control", "vip", 1, 2) // epoch 2
		waitScraped(41)
		// Exact counts over a span: the counter at its end minus the counter
		// at its start, or the whole counter for a score first seen inside it.
		now := `sum by (score) (shop_csat_responses_total{variant="{{ .Variant }}",segment="{{ .Segment }}"})`
		diff := now + ` - sum by (score) (shop_csat_responses_total{variant="{{ .Variant }}",segment="{{ .Segment }}"} offset {{ .Window }}) or ` + now
		eq := q
		eq.Segments, eq.Variants = []string{"vip"}, []string{"control"}
		eq.Epochs = map[string][]measure.EpochWindow{"vip": {{Epoch: 1, Start: t0, End: t1}, {Epoch: 2, Start: t1}}}
		res, err := source(diff).Tallies(ctx, eq)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.Epochs.Get("vip", 1, "control")).To(Equal([]int64{0, 0, 0, 0, 6}))
		g.Expect(res.Epochs.Get("vip", 2, "control")).To(Equal([]int64{2, 0, 0, 0, 0}))
		g.Expect(res.Tallies.Get("vip", "control")).To(Equal([]int64{2, 0, 0, 0, 6}))
	})

	t.Run("wrong shapes give clear errors", func(t *testing.T) {
		for _, tc := range []struct{ tmpl, want string }{
			{`shop_csat_responses_total{segment="{{ .Segment }}"}`, "score 5 appears in more than one sample"},
			{`shop_csat_responses_total{variant="{{ .Variant }}",segment="{{ .Segment }}"}[1m]`, "returned a range vector (matrix), want an instant vector"},
			{`sum(shop_csat_responses_total{variant="{{ .Variant }}",segment="{{ .Segment }}"})`, `has no "score" label`},
			{`label_replace(sum by (score) (shop_csat_responses_total{variant="{{ .Variant }}",segment="{{ .Segment }}"}), "score", "1$1", "score", "(.*)")`, "is outside the scale 1..5"},
			{`-sum by (score) (shop_csat_responses_total{variant="{{ .Variant }}",segment="{{ .Segment }}"})`, "is negative"},
			{`label_replace(sum by (score) (shop_csat_responses_total{variant="{{ .Variant }}",segment="{{ .Segment }}"}), "score", "$1.5", "score", "(.*)")`, "is not an integer score"},
			{`scalar(sum(shop_csat_responses_total{variant="{{ .Variant }}",segment="{{ .Segment }}"}))`, "returned a scalar"},
		} {
			g := NewWithT(t)
			_, err := source(tc.tmpl).Tallies(ctx, q)
			g.Expect(err).To(MatchError(ContainSubstring(tc.want)), tc.tmpl)
			g.Expect(err).To(MatchError(HavePrefix("query prometheus " + srv.URL + " for variant ")))
		}
	})

	t.Run("a query the server refuses", func(t *testing.T) {
		g := NewWithT(t)
		// Validate catches this early; a Source built anyway gets the server's error.
		tmpl := `sum by (score) (rate(shop_csat_responses_total{variant="{{ .Variant }}"}))`
		g.Expect(Validate(tmpl)).To(MatchError(ContainSubstring("not valid PromQL")))
		s, err := NewSource(cxv1.PrometheusQuery{Address: srv.URL, Query: tmpl}, "")
		g.Expect(err).NotTo(HaveOccurred())
		_, err = s.Tallies(ctx, q)
		g.Expect(err).To(MatchError(ContainSubstring("bad_data")))
		g.Expect(err).To(MatchError(ContainSubstring("the server refused the query")))
	})

	t.Run("unreachable address", func(t *testing.T) {
		g := NewWithT(t)
		addr := closedAddress(t)
		s, err := NewSource(cxv1.PrometheusQuery{Address: addr, Query: counts}, "")
		g.Expect(err).NotTo(HaveOccurred())
		_, err = s.Tallies(ctx, q)
		g.Expect(err).To(MatchError(And(ContainSubstring("query prometheus "+addr), ContainSubstring("cannot reach the server"))))
	})

	t.Run("guardrails", func(t *testing.T) {
		g := NewWithT(t)
		guard := cxv1.Guardrail{
			Name:       "error-rate",
			Prometheus: cxv1.PrometheusQuery{Address: srv.URL, Query: `max(shop_error_rate{variant="{{ .Variant }}",segment="{{ .Segment }}"})`},
			Max:        ptr("0.01"),
		}
		g.Expect(Validate(guard.Prometheus.Query)).To(Succeed())
		value := func(variant, segment string) (float64, error) {
			return NewGuardrails().Value(ctx, measure.GuardrailQuery{Experiment: exp, Guardrail: &guard, Variant: variant, Segment: segment, Window: time.Minute})
		}
		v, err := value("one-page", "all")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(v).To(Equal(0.034))
		breached, evidence, err := rollout.Breached(guard, v)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(breached).To(BeTrue())
		g.Expect(evidence).To(Equal("error-rate 0.034 > max 0.01"))

		v, err = value("control", "all")
		g.Expect(err).NotTo(HaveOccurred())
		breached, evidence, err = rollout.Breached(guard, v)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(breached).To(BeFalse())
		g.Expect(evidence).To(Equal("error-rate 0.004 <= max 0.01"))

		// No series: no data, never a passing value.
		_, err = value("one-page", "vip")
		g.Expect(errors.Is(err, measure.ErrNoData)).To(BeTrue(), "%v", err)

		// A query returning several samples.
		guard.Prometheus.Query = `shop_error_rate`
		_, err = value("one-page", "all")
		g.Expect(err).To(MatchError(ContainSubstring("returned 2 samples, want one")))
		g.Expect(errors.Is(err, measure.ErrNoData)).To(BeFalse())

		// A scalar is fine.
		guard.Prometheus.Query = `scalar(shop_error_rate{variant="{{ .Variant }}",segment="{{ .Segment }}"}) * 2`
		v, err = value("one-page", "all")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(v).To(Equal(0.068))
	})
	if t.Failed() {
		t.Logf("prometheus log:\n%s", srv.Logs())
	}
}
