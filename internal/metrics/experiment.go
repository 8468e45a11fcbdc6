package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

var experimentLabels = []string{"namespace", "experiment"}
var variantLabels = []string{"namespace", "experiment", "segment", "variant"}

var (
	// ExperimentInfo describes each experiment (value 1).
	ExperimentInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rapport_experiment_info",
		Help: "Experiment description (value 1): touchpoint, satisfaction metric and traffic mode.",
	}, []string{"namespace", "experiment", "touchpoint", "metric", "traffic"})

	// ExperimentPhase is 1 for the experiment's current phase, 0 for the others.
	ExperimentPhase = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rapport_experiment_phase",
		Help: "Experiment phase: 1 for the current phase, 0 for the others.",
	}, []string{"namespace", "experiment", "phase"})

	// ExperimentStep is the current step (1-based, 0 before the first).
	ExperimentStep = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rapport_experiment_step",
		Help: "Current rollout step of the experiment (1-based; 0 before the first step).",
	}, experimentLabels)

	// ExperimentSteps is the number of steps.
	ExperimentSteps = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rapport_experiment_steps",
		Help: "Number of rollout steps of the experiment.",
	}, experimentLabels)

	// TrafficWeight is the share of a segment's traffic routed to a variant (0..1).
	TrafficWeight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rapport_traffic_weight_ratio",
		Help: "Share of a segment's traffic routed to a variant, 0..1.",
	}, variantLabels)

	// Score is the satisfaction estimate of a variant in a segment, in points.
	Score = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rapport_satisfaction_score_points",
		Help: "Satisfaction estimate of a variant in a segment (CSAT 0..100 or NPS -100..100 points).",
	}, variantLabels)
	// ScoreLower is the lower bound of Score's always-valid interval.
	ScoreLower = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rapport_satisfaction_score_lower_points",
		Help: "Lower bound of the always-valid confidence interval of the satisfaction estimate.",
	}, variantLabels)
	// ScoreUpper is the upper bound of Score's always-valid interval.
	ScoreUpper = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rapport_satisfaction_score_upper_points",
		Help: "Upper bound of the always-valid confidence interval of the satisfaction estimate.",
	}, variantLabels)

	// Difference is a variant's score minus the control's, in points.
	Difference = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rapport_satisfaction_difference_points",
		Help: "Satisfaction of a variant minus the control's, in points.",
	}, variantLabels)
	// DifferenceLower is the lower bound of Difference's always-valid interval.
	DifferenceLower = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rapport_satisfaction_difference_lower_points",
		Help: "Lower bound of the always-valid confidence interval of the difference against the control.",
	}, variantLabels)
	// DifferenceUpper is the upper bound of Difference's always-valid interval.
	DifferenceUpper = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rapport_satisfaction_difference_upper_points",
		Help: "Upper bound of the always-valid confidence interval of the difference against the control.",
	}, variantLabels)

	// Responses is the number of responses counted in the current run.
	Responses = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rapport_satisfaction_responses",
		Help: "Responses counted for a variant in a segment during the current run.",
	}, variantLabels)

	// Verdict is 1 for the variant's current verdict, 0 for the others.
	Verdict = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rapport_variant_verdict",
		Help: "Decision-engine verdict of a variant in a segment: 1 for the current verdict, 0 for the others.",
	}, []string{"namespace", "experiment", "segment", "variant", "verdict"})

	// Rollbacks counts variants rolled back, by reason.
	Rollbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rapport_rollbacks_total",
		Help: "Variants rolled back in a segment, by reason.",
	}, []string{"namespace", "experiment", "segment", "reason"})

	// Promotions counts promotions per segment.
	Promotions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rapport_promotions_total",
		Help: "Segments promoted, by how (automatic or manual).",
	}, []string{"namespace", "experiment", "segment", "how"})

	// DecisionLatency times the decisive response's commit to the route change.
	DecisionLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "rapport_rollback_latency_seconds",
		Help:    "Time from the commit of the response that decided a rollback to the traffic change.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
	})

	// TrafficChanges counts traffic changes applied, by result.
	TrafficChanges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rapport_traffic_changes_total",
		Help: "Traffic splits applied to routes or Deployments, by result (applied or failed).",
	}, []string{"namespace", "experiment", "result"})

	// SegmentEpoch is each segment's current allocation epoch.
	SegmentEpoch = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rapport_segment_epoch",
		Help: "Current allocation epoch of each segment: it grows by one whenever the segment's weights change (a step, a rollback, a pause).",
	}, []string{"namespace", "experiment", "segment"})

	// SampleRatioMismatch is 1 while a segment's responses per variant do
	// not match the shares its weights predict.
	SampleRatioMismatch = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rapport_sample_ratio_mismatch",
		Help: "1 while a segment's responses per variant do not match the shares its weights predict (the segment cannot advance or be promoted), else 0.",
	}, []string{"namespace", "experiment", "segment"})

	// SettingsChanged is 1 while spec.satisfaction differs from the
	// settings the current run started with (status.settings).
	SettingsChanged = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rapport_settings_changed",
		Help: "1 while spec.satisfaction differs from the settings the current run is judged by (they apply to the next run), else 0.",
	}, experimentLabels)
)

var perExperiment = []*prometheus.MetricVec{
	ExperimentInfo.MetricVec, ExperimentPhase.MetricVec, ExperimentStep.MetricVec, ExperimentSteps.MetricVec,
	TrafficWeight.MetricVec, Score.MetricVec, ScoreLower.MetricVec, ScoreUpper.MetricVec,
	Difference.MetricVec, DifferenceLower.MetricVec, DifferenceUpper.MetricVec,
	Responses.MetricVec, Verdict.MetricVec, Rollbacks.MetricVec, Promotions.MetricVec, TrafficChanges.MetricVec,
	SegmentEpoch.MetricVec, SampleRatioMismatch.MetricVec, SettingsChanged.MetricVec,
}

func init() {
	ctrlmetrics.Registry.MustRegister(ExperimentInfo, ExperimentPhase, ExperimentStep, ExperimentSteps,
		TrafficWeight, Score, ScoreLower, ScoreUpper, Difference, DifferenceLower, DifferenceUpper,
		Responses, Verdict, Rollbacks, Promotions, DecisionLatency, TrafficChanges,
		SegmentEpoch, SampleRatioMismatch, SettingsChanged)
}

var phases = []cxv1.ExperimentPhase{cxv1.PhasePending, cxv1.PhaseProgressing, cxv1.PhasePaused, cxv1.PhaseSucceeded, cxv1.PhaseRolledBack, cxv1.PhaseFailed}
var verdicts = []cxv1.Verdict{cxv1.VerdictInsufficientData, cxv1.VerdictInconclusive, cxv1.VerdictNonInferior, cxv1.VerdictInferior}

// ObserveExperiment sets the gauges of an experiment from its status.
func ObserveExperiment(exp *cxv1.CXExperiment) {
	ns, name := exp.Namespace, exp.Name
	traffic := "gatewayAPI"
	if exp.Spec.Traffic.Replicas != nil {
		traffic = "replicas"
	}
	metric := string(exp.Spec.Satisfaction.Metric)
	if metric == "" {
		metric = string(cxv1.MetricCSAT)
	}
	ExperimentInfo.DeletePartialMatch(prometheus.Labels{"namespace": ns, "experiment": name})
	ExperimentInfo.WithLabelValues(ns, name, exp.Spec.Touchpoint, metric, traffic).Set(1)
	for _, p := range phases {
		v := 0.0
		if exp.Status.Phase == p {
			v = 1
		}
		ExperimentPhase.WithLabelValues(ns, name, string(p)).Set(v)
	}
	ExperimentStep.WithLabelValues(ns, name).Set(float64(exp.Status.CurrentStep))
	ExperimentSteps.WithLabelValues(ns, name).Set(float64(len(exp.Spec.Steps)))
	changed, _ := exp.SettingsChanged()
	SettingsChanged.WithLabelValues(ns, name).Set(boolValue(changed))
	for _, seg := range exp.Status.Segments {
		SegmentEpoch.WithLabelValues(ns, name, seg.Name).Set(float64(seg.Epoch))
		SampleRatioMismatch.WithLabelValues(ns, name, seg.Name).Set(boolValue(seg.SampleRatio != nil && seg.SampleRatio.Mismatch))
		for _, v := range seg.Variants {
			l := []string{ns, name, seg.Name, v.Name}
			TrafficWeight.WithLabelValues(l...).Set(float64(v.Weight) / 100)
			Responses.WithLabelValues(l...).Set(float64(v.Responses))
			setPoints(Score, l, v.Score)
			setInterval(ScoreLower, ScoreUpper, l, v.ScoreInterval)
			setPoints(Difference, l, v.Difference)
			setInterval(DifferenceLower, DifferenceUpper, l, v.DifferenceInterval)
			if v.Verdict != "" {
				for _, vd := range verdicts {
					val := 0.0
					if v.Verdict == vd {
						val = 1
					}
					Verdict.WithLabelValues(ns, name, seg.Name, v.Name, string(vd)).Set(val)
				}
			}
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// setPoints sets a gauge from points of the status, or removes the series
// when the value is unknown (so dashboards show a gap, not 0).
func setPoints(g *prometheus.GaugeVec, labels []string, s string) {
	f, err := cxv1.ParsePoints(s)
	if err != nil {
		g.DeleteLabelValues(labels...)
		return
	}
	g.WithLabelValues(labels...).Set(f)
}

// setInterval sets the gauges of an interval's bounds, or removes both.
func setInterval(lower, upper *prometheus.GaugeVec, labels []string, s string) {
	lo, hi, err := cxv1.ParseInterval(s)
	if err != nil {
		lower.DeleteLabelValues(labels...)
		upper.DeleteLabelValues(labels...)
		return
	}
	lower.WithLabelValues(labels...).Set(lo)
	upper.WithLabelValues(labels...).Set(hi)
}

// RecordRollbacks counts rollbacks decided in a reconcile.
func RecordRollbacks(exp *cxv1.CXExperiment, rbs []cxv1.Rollback) {
	for _, rb := range rbs {
		Rollbacks.WithLabelValues(exp.Namespace, exp.Name, rb.Segment, string(rb.Reason)).Inc()
	}
}
