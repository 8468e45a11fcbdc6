package controller

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/analysis"
	"github.com/rapport-dev/rapport/internal/measure"
	"github.com/rapport-dev/rapport/internal/rollout"
)

// analysisConfig maps the run's satisfaction settings to the decision
// engine's config.
func analysisConfig(s cxv1.SatisfactionSettings, spec *cxv1.CXExperimentSpec) analysis.Config {
	return analysis.Config{
		Metric:             analysis.Metric(s.Metric),
		ScaleMin:           s.ScoreMin,
		ScaleMax:           s.ScoreMax,
		SatisfiedAtOrAbove: s.SatisfiedAtOrAbove,
		Minimum:            s.Minimum,
		MaxDrop:            s.MaxDrop,
		Confidence:         s.Confidence,
		MinResponses:       s.MinResponses,
		Segments:           len(spec.SegmentNames()),
	}
}

func variantNames(spec *cxv1.CXExperimentSpec) (control string, others []string) {
	for _, v := range spec.Variants {
		if v.Control {
			control = v.Name
		} else {
			others = append(others, v.Name)
		}
	}
	return control, others
}

// measure reads satisfaction and judges every variant in every segment.
// With the collector it runs at every reconcile (a cached read); a polled
// source (Prometheus) runs once per spec.satisfaction.interval, and between
// polls the verdicts in status stand.
func (r *CXExperimentReconciler) measure(ctx context.Context, sc *scope) (ctrl.Result, bool, error) {
	exp := sc.exp
	if !sc.running() && exp.Status.Phase != cxv1.PhasePending {
		return ctrl.Result{}, false, nil
	}
	interval := sc.settings.Interval
	due := exp.Status.MeasuredAt == nil || sc.now.Sub(exp.Status.MeasuredAt.Time) >= interval
	polled := exp.Spec.Satisfaction.Source.MetricRef != nil
	if polled && !due {
		sc.judgements, sc.mismatches = judgementsFromStatus(&exp.Status)
		holdForGuardrails(&exp.Spec, sc.judgements)
		return ctrl.Result{RequeueAfter: exp.Status.MeasuredAt.Add(interval).Sub(sc.now)}, false, nil
	}
	var res ctrl.Result
	if polled || len(exp.Spec.Guardrails) > 0 {
		res.RequeueAfter = interval
	}
	source, err := r.source(ctx, sc)
	var result measure.Result
	if err == nil {
		result, err = source.Tallies(ctx, measure.Query{
			Experiment: exp, Settings: sc.settings, Segments: exp.Spec.SegmentNames(),
			Variants: allVariants(&exp.Spec), Window: window(exp, sc.now),
			Epochs: epochWindows(&exp.Status), Now: sc.now,
		})
	}
	if err != nil {
		// Missing data is never read as satisfied: every verdict becomes
		// InsufficientData, which neither advances nor promotes.
		sc.measured = failed(cxv1.ReasonMeasurementFailed, "%v", err)
		sc.judgements = rollout.Judgements{}
		markUnmeasured(&exp.Status, "measurement failed: "+err.Error())
		now := metav1.NewTime(sc.now)
		exp.Status.MeasuredAt = &now
		if res.RequeueAfter == 0 {
			res.RequeueAfter = requeueMissing
		}
		return res, false, nil
	}
	sc.lastResponseAt = result.LastResponseAt
	judgements, mismatches, fields, err := evaluate(sc.settings, exp, result)
	if err != nil {
		sc.measured = failed(cxv1.ReasonMeasurementFailed, "%v", err)
		return res, false, nil
	}
	sc.judgements, sc.mismatches = judgements, mismatches
	if len(exp.Spec.Guardrails) > 0 && (due || sc.exp.Status.MeasuredAt == nil) {
		sc.breaches = r.guardrails(ctx, sc, judgements)
	} else {
		holdForGuardrails(&exp.Spec, judgements)
	}
	if exp.Status.Phase == cxv1.PhasePending && exp.Status.Segments == nil {
		// The run starts in this reconcile (decide): its segments take the
		// first measurement now, so it shares the start's status write.
		exp.Status.Segments = rollout.NewSegments(&exp.Spec)
	}
	m := measurement{fields: fields, due: due, polled: polled, interval: interval, summary: summarize(sc.settings, &exp.Spec, result.Tallies)}
	res = lowestRequeue(res, ctrl.Result{RequeueAfter: m.record(&exp.Status, sc.now)})
	if len(result.Missing) > 0 && polled {
		sc.measured = succeeded(cxv1.ReasonNoData, "no responses yet for %s (verdict InsufficientData until data arrives)", strings.Join(result.Missing, ", "))
	} else {
		// No counts in the message: it would change with every commit and
		// force a status write; the counts are in status.segments.
		sc.measured = succeeded(cxv1.ReasonMeasured, "satisfaction read from %s", sourceName(exp))
	}
	return res, false, nil
}

func allVariants(spec *cxv1.CXExperimentSpec) []string {
	out := make([]string, len(spec.Variants))
	for i, v := range spec.Variants {
		out[i] = v.Name
	}
	return out
}

// epochWindows returns each segment's allocation epochs as time spans, for
// sources that read by time.
func epochWindows(st *cxv1.CXExperimentStatus) map[string][]measure.EpochWindow {
	out := map[string][]measure.EpochWindow{}
	for _, seg := range st.Segments {
		for i, ep := range seg.Epochs {
			w := measure.EpochWindow{Epoch: ep.Epoch, Start: ep.StartedAt.Time}
			if i+1 < len(seg.Epochs) {
				w.End = seg.Epochs[i+1].StartedAt.Time
			}
			out[seg.Name] = append(out[seg.Name], w)
		}
	}
	return out
}

// window is the time since the run started, for Prometheus range functions.
func window(exp *cxv1.CXExperiment, now time.Time) time.Duration {
	if exp.Status.StartedAt == nil {
		return time.Second
	}
	return max(now.Sub(exp.Status.StartedAt.Time), time.Second)
}

func sourceName(exp *cxv1.CXExperiment) string {
	if ref := exp.Spec.Satisfaction.Source.MetricRef; ref != nil {
		return "SatisfactionMetric " + ref.Name
	}
	return "the feedback collector"
}

// source returns the measurement source of the experiment.
func (r *CXExperimentReconciler) source(ctx context.Context, sc *scope) (measure.Source, error) {
	if sc.metric == nil {
		if r.Collector == nil {
			return nil, fmt.Errorf("the feedback collector is disabled on this manager (--collector-bind-address=0); use spec.satisfaction.source.metricRef")
		}
		return r.Collector, nil
	}
	if r.Prometheus == nil {
		return nil, fmt.Errorf("no Prometheus provider configured")
	}
	token, err := r.secretValue(ctx, sc.exp.Namespace, sc.metric.Spec.Prometheus.BearerTokenSecretRef)
	if err != nil {
		return nil, err
	}
	return r.Prometheus(sc.metric.Spec.Prometheus, token)
}

// variantFields are the measurement fields of one variant's status.
type variantFields struct {
	responses                                    int64
	share, score, scoreIv, diff, diffIv, message string
	verdict                                      cxv1.Verdict
	windows                                      []cxv1.RecentWindow
}

// segmentFields are the measurement fields of one segment's status.
type segmentFields struct {
	variants    map[string]variantFields
	sampleRatio *cxv1.SampleRatioStatus
}

// fmtInterval formats an interval of the decision engine for status.
func fmtInterval(iv analysis.Interval) string {
	return cxv1.FormatInterval(iv.Lower, iv.Upper)
}

// evaluate runs the decision engine on each segment's evidence: its counts
// per allocation epoch, the epochs' weights and the variants'
// recent-evidence windows from status. It returns the judgements for
// rollout, the segments held by a sample-ratio mismatch, and the status
// fields per segment and variant.
func evaluate(s cxv1.SatisfactionSettings, exp *cxv1.CXExperiment, res measure.Result) (rollout.Judgements, map[string]string, map[string]segmentFields, error) {
	spec := &exp.Spec
	cfg := analysisConfig(s, spec)
	eng, err := analysis.NewEngine(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	control, others := variantNames(spec)
	judgements := rollout.Judgements{}
	mismatches := map[string]string{}
	fields := map[string]segmentFields{}
	for _, name := range spec.SegmentNames() {
		seg := segmentEvidence(s, exp, name, control, others, res)
		out, err := eng.Evaluate(seg)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("evaluate segment %s: %w", name, err)
		}
		judgements[name] = map[string]rollout.Judgement{}
		sf := segmentFields{variants: map[string]variantFields{}}
		total := out.Control.Responses
		for _, a := range out.Variants {
			total += a.Responses
		}
		share := func(n int64) string {
			if total == 0 {
				return ""
			}
			return cxv1.FormatPoints(100 * float64(n) / float64(total))
		}
		cf := variantFields{responses: out.Control.Responses, share: share(out.Control.Responses)}
		if out.Control.Responses > 0 {
			cf.score = cxv1.FormatPoints(out.Control.Score)
			if out.Control.Responses >= s.MinResponses {
				cf.scoreIv = fmtInterval(out.Control.Interval)
			}
		}
		sf.variants[control] = cf
		for _, a := range out.Variants {
			reason := cxv1.RollbackInferior
			switch a.Rule {
			case analysis.RuleMinimum:
				reason = cxv1.RollbackBelowMinimum
			case analysis.RuleRecentMaxDrop:
				reason = cxv1.RollbackRecentlyInferior
			}
			judgements[name][a.Variant] = rollout.Judgement{
				Verdict: cxv1.Verdict(a.Verdict), Reason: reason, Evidence: a.Explanation,
				Responses: a.Responses, Score: a.Score,
			}
			f := variantFields{responses: a.Responses, share: share(a.Responses), verdict: cxv1.Verdict(a.Verdict), message: a.Explanation,
				windows: statusWindows(out.Windows[a.Variant])}
			if a.Responses > 0 && out.Control.Responses > 0 && !math.IsNaN(a.Score) {
				f.score, f.diff = cxv1.FormatPoints(a.Score), cxv1.FormatPoints(a.Difference)
				if a.Verdict != analysis.InsufficientData {
					f.scoreIv, f.diffIv = fmtInterval(a.ScoreInterval), fmtInterval(a.DifferenceInterval)
				}
			}
			sf.variants[a.Variant] = f
		}
		sf.sampleRatio = sampleRatioStatus(out.SampleRatio)
		if out.SampleRatio.Mismatch {
			mismatches[name] = sf.sampleRatio.Shares
		}
		fields[name] = sf
	}
	return judgements, mismatches, fields, nil
}

// segmentEvidence assembles what the engine judges for one segment: the
// counts of every epoch the source returned (epoch 0: counted before the
// run had epochs), the weights status recorded for each epoch, and each
// variant's windows.
func segmentEvidence(s cxv1.SatisfactionSettings, exp *cxv1.CXExperiment, name, control string, others []string, res measure.Result) analysis.Segment {
	seg := analysis.Segment{Control: control, Variants: others, Windows: map[string][]analysis.Window{}}
	var st *cxv1.SegmentStatus
	for i := range exp.Status.Segments {
		if exp.Status.Segments[i].Name == name {
			st = &exp.Status.Segments[i]
		}
	}
	weights := map[int32]map[string]int32{}
	if st != nil {
		for _, ep := range st.Epochs {
			w := map[string]int32{}
			for _, vw := range ep.Weights {
				w[vw.Variant] = vw.Weight
			}
			weights[ep.Epoch] = w
		}
		for _, v := range st.Variants {
			for _, w := range v.Windows {
				seg.Windows[v.Name] = append(seg.Windows[v.Name], analysis.Window{
					Index: w.Index, Epoch: w.Epoch, ControlCounts: fitScale(w.Control, s.Scores()), VariantCounts: fitScale(w.Variant, s.Scores())})
			}
		}
	}
	byEpoch := res.Epochs[name]
	if byEpoch == nil && res.Tallies[name] != nil {
		// A source that cannot split by epoch: the run is one epoch.
		byEpoch = map[int32]map[string][]int64{0: res.Tallies[name]}
	}
	numbers := slices.Sorted(maps.Keys(byEpoch))
	for _, n := range numbers {
		ep := analysis.Epoch{Number: n, Weights: weights[n], Counts: analysis.Counts{}}
		for arm, c := range byEpoch[n] {
			ep.Counts[arm] = fitScale(c, s.Scores())
		}
		seg.Epochs = append(seg.Epochs, ep)
	}
	// Windows start in epochs the engine must know, even before they have
	// counts.
	if st != nil && len(st.Epochs) > 0 {
		cur := st.Epochs[len(st.Epochs)-1].Epoch
		if !slices.Contains(numbers, cur) {
			seg.Epochs = append(seg.Epochs, analysis.Epoch{Number: cur, Weights: weights[cur], Counts: analysis.Counts{}})
			slices.SortFunc(seg.Epochs, func(a, b analysis.Epoch) int { return int(a.Number - b.Number) })
		}
	}
	return seg
}

// fitScale pads or cuts counts to the scale's length.
func fitScale(c []int64, n int) []int64 {
	out := make([]int64, n)
	copy(out, c)
	return out
}

func statusWindows(ws []analysis.Window) []cxv1.RecentWindow {
	out := make([]cxv1.RecentWindow, 0, len(ws))
	for _, w := range ws {
		out = append(out, cxv1.RecentWindow{Index: w.Index, Epoch: w.Epoch, Control: w.ControlCounts, Variant: w.VariantCounts})
	}
	return out
}

// sampleRatioStatus formats the sample-ratio test for status.
func sampleRatioStatus(sr analysis.SampleRatio) *cxv1.SampleRatioStatus {
	if sr.Epoch == 0 {
		return nil
	}
	out := &cxv1.SampleRatioStatus{
		Mismatch: sr.Mismatch,
		Evidence: fmt.Sprintf("%.1f of %.1f", sr.LogEvidence, sr.Threshold),
		Epoch:    sr.Epoch,
	}
	var parts []string
	for _, arm := range slices.Sorted(maps.Keys(sr.Expected)) {
		parts = append(parts, fmt.Sprintf("%s %.1f%% (expected %.1f%%)", arm, sr.Observed[arm], sr.Expected[arm]))
	}
	out.Shares = strings.Join(parts, ", ")
	return out
}

// measurement is what measure read, to record into status.
type measurement struct {
	fields   map[string]segmentFields
	due      bool
	polled   bool // Prometheus: measuredAt records the poll
	interval time.Duration
	summary  cxv1.Summary
}

// record writes a measurement into status: at once when a verdict changed;
// otherwise new counts at most once per spec.satisfaction.interval, so that
// steady feedback does not cost a status write per commit. Unchanged counts
// cost no write at all (a polled source still records its poll time).
// It returns how long until held-back counts are due, or 0.
func (m *measurement) record(st *cxv1.CXExperimentStatus, now time.Time) time.Duration {
	// Only the segments change here: copy those, not the whole status (this
	// runs at every reconcile, i.e. at every collector commit).
	var before []cxv1.SegmentStatus // stays nil when st.Segments is
	if st.Segments != nil {
		before = make([]cxv1.SegmentStatus, len(st.Segments))
		for i := range st.Segments {
			st.Segments[i].DeepCopyInto(&before[i])
		}
	}
	verdictChanged := applyMeasurement(st, m.fields)
	countsChanged := !equality.Semantic.DeepEqual(before, st.Segments)
	if verdictChanged || (m.due && (countsChanged || m.polled)) {
		t := metav1.NewTime(now)
		st.MeasuredAt = &t
		st.Summary = m.summary
		return 0
	}
	// Not time yet: keep what status says until the next refresh, and come
	// back then so the last counts do not wait for another event.
	st.Segments = before
	if countsChanged && st.MeasuredAt != nil {
		return max(st.MeasuredAt.Add(m.interval).Sub(now), time.Millisecond)
	}
	return 0
}

// applyMeasurement copies the fields into status. It reports whether a
// verdict or a sample-ratio mismatch changed (so that status is written at
// once rather than at the next interval).
func applyMeasurement(st *cxv1.CXExperimentStatus, fields map[string]segmentFields) bool {
	changed := false
	for i := range st.Segments {
		seg := &st.Segments[i]
		sf, ok := fields[seg.Name]
		if !ok {
			continue
		}
		if (seg.SampleRatio != nil && seg.SampleRatio.Mismatch) != (sf.sampleRatio != nil && sf.sampleRatio.Mismatch) {
			changed = true
		}
		seg.SampleRatio = sf.sampleRatio
		for j := range seg.Variants {
			v := &seg.Variants[j]
			f, ok := sf.variants[v.Name]
			if !ok {
				continue
			}
			if v.Verdict != f.verdict {
				changed = true
			}
			v.Responses, v.RealizedShare, v.Score, v.ScoreInterval = f.responses, f.share, f.score, f.scoreIv
			v.Difference, v.DifferenceInterval, v.Verdict, v.Message = f.diff, f.diffIv, f.verdict, f.message
			if v.State != cxv1.StateControl {
				v.Windows = f.windows
			}
		}
	}
	return changed
}

// markUnmeasured sets every variant's verdict to InsufficientData.
func markUnmeasured(st *cxv1.CXExperimentStatus, why string) {
	for i := range st.Segments {
		for j := range st.Segments[i].Variants {
			v := &st.Segments[i].Variants[j]
			if v.State == cxv1.StateControl {
				continue
			}
			v.Verdict, v.Message = cxv1.VerdictInsufficientData, why
		}
	}
}

// judgementsFromStatus rebuilds the judgements and the segments held by a
// sample-ratio mismatch of the last measurement.
func judgementsFromStatus(st *cxv1.CXExperimentStatus) (rollout.Judgements, map[string]string) {
	out := rollout.Judgements{}
	mismatches := map[string]string{}
	for _, seg := range st.Segments {
		out[seg.Name] = map[string]rollout.Judgement{}
		if seg.SampleRatio != nil && seg.SampleRatio.Mismatch {
			mismatches[seg.Name] = seg.SampleRatio.Shares
		}
		for _, v := range seg.Variants {
			if v.Verdict == "" {
				continue
			}
			score, err := cxv1.ParsePoints(v.Score)
			if err != nil {
				score = 0 // no score yet: ranks last at promotion
			}
			out[seg.Name][v.Name] = rollout.Judgement{Verdict: v.Verdict, Evidence: v.Message, Responses: v.Responses, Score: score}
		}
	}
	return out, mismatches
}

// summarize pools each variant's responses across segments for kubectl get.
func summarize(s cxv1.SatisfactionSettings, spec *cxv1.CXExperimentSpec, t measure.Tallies) cxv1.Summary {
	cfg := analysisConfig(s, spec)
	pooled := func(v string) (analysis.Estimate, bool) {
		sum := make([]int64, s.Scores())
		for _, seg := range spec.SegmentNames() {
			for i, c := range t.Get(seg, v) {
				if i < len(sum) {
					sum[i] += c
				}
			}
		}
		e, err := analysis.EstimateArm(cfg, analysis.Arm{Name: v, Counts: sum})
		return e, err == nil && e.Responses > 0
	}
	control, others := variantNames(spec)
	var out cxv1.Summary
	ctl, ok := pooled(control)
	if ok {
		out.Control = cxv1.FormatPoints(ctl.Score)
	}
	var parts []string
	for _, v := range others {
		e, vok := pooled(v)
		switch {
		case vok && ok:
			parts = append(parts, fmt.Sprintf("%s %.1f (%+.1f)", v, e.Score, e.Score-ctl.Score))
		case vok:
			parts = append(parts, fmt.Sprintf("%s %.1f", v, e.Score))
		}
	}
	out.Variants = strings.Join(parts, ", ")
	return out
}
