package analysis

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Metric names the satisfaction measure an experiment is judged on.
type Metric string

const (
	// CSAT is the share of satisfied responses (score >= Config.SatisfiedAtOrAbove),
	// in points 0..100.
	CSAT Metric = "CSAT"
	// NPS is % promoters (9..10) minus % detractors (0..6) on a 0..10 scale,
	// in points -100..100.
	NPS Metric = "NPS"
)

// MaxVariants is the largest number of non-control arms one evaluation accepts.
const MaxVariants = 7

// Config describes how the segments of one experiment are judged. It must
// stay the same for a whole run: the guarantee covers every look at the
// evidence made under one Config (the controller freezes it per run).
type Config struct {
	Metric Metric
	// ScaleMin and ScaleMax bound the survey scale: 1..ScaleMax (ScaleMax 2..10)
	// for CSAT, always 0..10 for NPS.
	ScaleMin, ScaleMax int
	// SatisfiedAtOrAbove is the lowest score that counts as satisfied (CSAT only;
	// top-2-box on 1..5 is 4). It is ignored for NPS.
	SatisfiedAtOrAbove int
	// Minimum is an optional absolute floor for a variant's score, in points.
	Minimum *float64
	// MaxDrop is the largest tolerated drop of a variant below the control, in points.
	MaxDrop float64
	// Confidence sets every error budget (see ErrorBudgets): 1-Confidence is
	// the chance of ever advancing or promoting a variant that is beyond the
	// margin anywhere in the experiment, and of ever rolling back, in one
	// segment, a variant within it (e.g. 0.95).
	Confidence float64
	// MinResponses is the number of responses each arm needs before any
	// verdict, and each arm of a recent-evidence window before it is judged.
	MinResponses int64
	// Segments is the number of segments the experiment judges (at least 1):
	// the advance budget is split across them.
	Segments int
}

// pointRange is the range of a score in points.
func (m Metric) pointRange() (lo, hi float64) { //nolint:unparam // a range is a pair, even when its top is fixed
	if m == NPS {
		return -100, 100
	}
	return 0, 100
}

// Validate reports every problem with c, each naming the offending field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("analysis: Config.%s %s", field, fmt.Sprintf(format, args...)))
	}
	metricOK := true
	switch c.Metric {
	case CSAT:
		if c.ScaleMin != 1 {
			bad("ScaleMin", "must be 1 for CSAT, got %d", c.ScaleMin)
		}
		if c.ScaleMax < 2 || c.ScaleMax > 10 {
			bad("ScaleMax", "must be in 2..10 for CSAT, got %d", c.ScaleMax)
		} else if c.SatisfiedAtOrAbove <= c.ScaleMin || c.SatisfiedAtOrAbove > c.ScaleMax {
			bad("SatisfiedAtOrAbove", "must be in %d..%d for a %d..%d CSAT scale, got %d",
				c.ScaleMin+1, c.ScaleMax, c.ScaleMin, c.ScaleMax, c.SatisfiedAtOrAbove)
		}
	case NPS:
		if c.ScaleMin != 0 {
			bad("ScaleMin", "must be 0 for NPS, got %d", c.ScaleMin)
		}
		if c.ScaleMax != 10 {
			bad("ScaleMax", "must be 10 for NPS, got %d", c.ScaleMax)
		}
	default:
		metricOK = false
		bad("Metric", "must be %q or %q, got %q", CSAT, NPS, c.Metric)
	}
	lo, hi := c.Metric.pointRange()
	if c.Minimum != nil && metricOK && !(*c.Minimum >= lo && *c.Minimum <= hi) {
		bad("Minimum", "must be in %g..%g points for %s, got %g", lo, hi, c.Metric, *c.Minimum)
	}
	if !(c.MaxDrop >= 0 && c.MaxDrop < hi-lo) {
		bad("MaxDrop", "must be in 0..%g points (exclusive), got %g", hi-lo, c.MaxDrop)
	}
	if !(c.Confidence > 0 && c.Confidence < 1) {
		bad("Confidence", "must be strictly between 0 and 1 (e.g. 0.95), got %g", c.Confidence)
	}
	if c.MinResponses < 1 {
		bad("MinResponses", "must be at least 1, got %d", c.MinResponses)
	}
	if c.Segments < 1 {
		bad("Segments", "must be at least 1 (the number of segments the experiment judges), got %d", c.Segments)
	}
	return errors.Join(errs...)
}

// Verdict is the outcome for one variant in one segment.
type Verdict string

const (
	// Inferior means customers are measurably less satisfied than allowed; roll back.
	Inferior Verdict = "Inferior"
	// NonInferior means the variant is measurably no worse than allowed.
	NonInferior Verdict = "NonInferior"
	// Inconclusive means enough data to look, not enough to decide either way.
	Inconclusive Verdict = "Inconclusive"
	// InsufficientData means the variant or the control has fewer than MinResponses.
	InsufficientData Verdict = "InsufficientData"
)

// Rule names the claim that made a verdict Inferior.
type Rule string

const (
	// RuleMaxDrop means that over the whole run, the variant is more than MaxDrop below the control.
	RuleMaxDrop Rule = "MaxDrop"
	// RuleRecentMaxDrop means that over a recent window of the run, the variant is more
	// than MaxDrop below the control (a regression that began mid-run).
	RuleRecentMaxDrop Rule = "RecentMaxDrop"
	// RuleMinimum means that the variant's score is below Minimum.
	RuleMinimum Rule = "Minimum"
)

// Interval is a closed interval in points.
type Interval struct{ Lower, Upper float64 }

// Counts maps an arm's name to its number of responses per score:
// Counts[arm][i] is the number of responses with score ScaleMin+i.
type Counts map[string][]int64

// Epoch is the evidence of one allocation epoch of a segment: a period during
// which the segment's weights did not change. Responses belong to the epoch
// in which the customer was served.
type Epoch struct {
	// Number identifies the epoch within the run: 1, 2, ... in order; 0 holds
	// counts recorded before epochs existed (read as one epoch).
	Number int32
	// Weights are the percentages of the segment's traffic each arm received
	// during the epoch; nil when unknown (then the sample-ratio test skips the
	// epoch). An arm with weight 0 is not expected to answer.
	Weights map[string]int32
	// Counts are the responses of the epoch per arm; an absent arm has none.
	Counts Counts
}

// Window is a restart of the recent-evidence test for one variant: it
// judges only the responses counted after it began, so a regression that
// begins mid-run is not diluted by the good answers before it. Windows are
// opened by Evaluate (see SegmentResult.Windows) and must be stored by the
// caller and passed back unchanged.
type Window struct {
	// Index numbers the windows of a variant in a segment from 1; window k
	// may spend RecentAlpha/(k(k+1)) of the rollback budget.
	Index int32
	// Epoch is the epoch the window began in; ControlCounts and VariantCounts
	// are that epoch's counts when it began, which the window excludes.
	// Earlier epochs are excluded whole, later ones included whole.
	Epoch         int32
	ControlCounts []int64
	VariantCounts []int64
}

// Segment is what one segment of an experiment has collected in a run.
type Segment struct {
	// Control is the name of the control arm.
	Control string
	// Variants are the non-control arms, in the order assessments are returned.
	Variants []string
	// Epochs in increasing Number.
	Epochs []Epoch
	// Windows are each variant's recent-evidence windows, oldest first, as
	// returned by the previous Evaluate of the run (nil at the start).
	Windows map[string][]Window
}

// ArmEstimate is one arm's score over the run.
type ArmEstimate struct {
	Name      string
	Responses int64
	// Score is the arm's score over all its responses of the run, in points
	// (0 without responses).
	Score float64
	// Interval is the always-valid interval of Score; valid only when
	// Responses >= MinResponses (else zero).
	Interval Interval
}

// Recent is the recent-evidence window reported for a variant: the one
// that decided the verdict, else the newest one that can be judged.
type Recent struct {
	Window           int32
	Responses        int64
	ControlResponses int64
	// Difference is the variant's difference to the control in the window;
	// UpperBound is the window's always-valid upper confidence bound on it,
	// at the window's own error budget.
	Difference, UpperBound float64
}

// Assessment is the verdict for one variant against the control in one
// segment. All figures are in points.
type Assessment struct {
	Variant string
	Verdict Verdict
	// Rule is the claim that made the verdict Inferior (empty otherwise).
	Rule Rule
	// Responses and Score: the variant over the run.
	Responses     int64
	Score         float64
	ScoreInterval Interval
	// Difference is the variant's difference to the control, stratified by
	// epoch (each epoch compares arms served under the same weights, and the
	// epochs are combined with information weights), so a drift both arms
	// share never looks like an effect.
	Difference float64
	// DifferenceInterval: Lower is the bound the advance claim uses (at the
	// advance budget), Upper the bound the rollback claim uses (at the
	// cumulative rollback budget). Valid when Verdict is not InsufficientData.
	DifferenceInterval Interval
	// Recent is the recent-evidence window reported, or nil when none can be
	// judged yet.
	Recent      *Recent
	Explanation string
}

// SegmentResult is the judgement of one segment.
type SegmentResult struct {
	Control     ArmEstimate
	Variants    []Assessment
	SampleRatio SampleRatio
	// Windows are every variant's recent-evidence windows after this look
	// (new ones opened, old ones dropped): store them and pass them back in
	// the next Segment of the run.
	Windows map[string][]Window
}

// Evaluate judges every variant of one segment against the control. It may be
// called after every batch of responses: the guarantees of ErrorBudgets hold
// over every call of a run together, however often it is called, as long as
// cfg stays the same and the windows it returns are passed back.
func Evaluate(cfg Config, seg Segment) (SegmentResult, error) {
	e, err := NewEngine(cfg)
	if err != nil {
		return SegmentResult{}, err
	}
	return e.Evaluate(seg)
}

// Engine evaluates segments under one Config, reusing its buffers. It is not
// safe for concurrent use.
type Engine struct {
	cfg    Config
	values []float64 // category values, proportion units
	cat    []int     // category of each score
	fit    *restricted
	bufs   [2]strataBuf
	tau2   float64
	lo, hi float64 // point range
}

// engine is the internal name used by the statistics files.
type engine = Engine

// NewEngine validates cfg and prepares an Engine.
func NewEngine(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, tau2: cfg.MixingVariance()}
	e.lo, e.hi = cfg.Metric.pointRange()
	if cfg.Metric == CSAT {
		e.values = []float64{0, 1}
	} else {
		e.values = []float64{-1, 0, 1}
	}
	for s := cfg.ScaleMin; s <= cfg.ScaleMax; s++ {
		e.cat = append(e.cat, cfg.category(s))
	}
	e.fit = newRestricted(len(e.values))
	return e, nil
}

// category is the index of a score's category in the engine's values.
func (c Config) category(score int) int {
	if c.Metric == CSAT {
		if score >= c.SatisfiedAtOrAbove {
			return 1
		}
		return 0
	}
	switch {
	case score >= 9:
		return 2 // promoter
	case score <= 6:
		return 0 // detractor
	}
	return 1 // passive
}

// collapse adds counts (per score) into dst (per category) and returns the
// number of responses.
func (e *Engine) collapse(counts []int64, dst []int64) int64 {
	var n int64
	for i, c := range counts {
		dst[e.cat[i]] += c
		n += c
	}
	return n
}

// mean is the mean of category counts in proportion units.
func (e *Engine) mean(cats []int64, n int64) float64 {
	if n == 0 {
		return 0
	}
	var s float64
	for k, c := range cats {
		s += e.values[k] * float64(c)
	}
	return s / float64(n)
}

// checkSegment validates the input's names and counts.
func (e *Engine) checkSegment(seg Segment) error {
	if len(seg.Variants) == 0 || len(seg.Variants) > MaxVariants {
		return fmt.Errorf("analysis: need 1..%d variants besides the control, got %d", MaxVariants, len(seg.Variants))
	}
	if seg.Control == "" {
		return errors.New("analysis: every arm needs a name")
	}
	for i, v := range seg.Variants {
		if v == "" {
			return errors.New("analysis: every arm needs a name")
		}
		if v == seg.Control || slices.Contains(seg.Variants[:i], v) {
			return fmt.Errorf("analysis: arm name %q is used twice", v)
		}
	}
	want := e.cfg.ScaleMax - e.cfg.ScaleMin + 1
	for i, ep := range seg.Epochs {
		if i > 0 && ep.Number <= seg.Epochs[i-1].Number {
			return fmt.Errorf("analysis: epochs must be in increasing order, got %d after %d", ep.Number, seg.Epochs[i-1].Number)
		}
		for arm, counts := range ep.Counts {
			if err := checkCounts(arm, ep.Number, counts, want, e.cfg); err != nil {
				return err
			}
		}
	}
	for v, ws := range seg.Windows {
		for _, w := range ws {
			if err := checkCounts(seg.Control, w.Epoch, w.ControlCounts, want, e.cfg); err != nil {
				return fmt.Errorf("window %d of %s: %w", w.Index, v, err)
			}
			if err := checkCounts(v, w.Epoch, w.VariantCounts, want, e.cfg); err != nil {
				return fmt.Errorf("window %d of %s: %w", w.Index, v, err)
			}
		}
	}
	return nil
}

func checkCounts(arm string, epoch int32, counts []int64, want int, cfg Config) error {
	if len(counts) != want {
		return fmt.Errorf("analysis: arm %q has %d counts in epoch %d, want %d (scores %d..%d)",
			arm, len(counts), epoch, want, cfg.ScaleMin, cfg.ScaleMax)
	}
	var n int64
	for i, c := range counts {
		if c < 0 {
			return fmt.Errorf("analysis: arm %q has a negative count (%d) for score %d in epoch %d", arm, c, cfg.ScaleMin+i, epoch)
		}
		if c > math.MaxInt64/4-n {
			return fmt.Errorf("analysis: arm %q has too many responses to count", arm)
		}
		n += c
	}
	return nil
}

// pooled sums an arm's counts over the epochs, per score.
func (e *Engine) pooled(seg Segment, arm string) []int64 {
	out := make([]int64, e.cfg.ScaleMax-e.cfg.ScaleMin+1)
	for _, ep := range seg.Epochs {
		for i, c := range ep.Counts[arm] {
			out[i] += c
		}
	}
	return out
}

// strata returns the per-epoch category counts of the control and a
// variant, restricted to the window w when it is not nil. The strata share
// buf's backing arrays: they are valid until the next call with the same buf.
func (e *Engine) strata(seg Segment, variant string, w *Window, buf *strataBuf) []stratum {
	k := len(e.values)
	buf.strata = buf.strata[:0]
	need := 2 * k * len(seg.Epochs)
	if cap(buf.counts) < need {
		buf.counts = make([]int64, need)
	}
	counts := buf.counts[:need]
	clear(counts)
	for i, ep := range seg.Epochs {
		if w != nil && ep.Number < w.Epoch {
			continue
		}
		st := stratum{ctl: counts[2*i*k : (2*i+1)*k], vr: counts[(2*i+1)*k : (2*i+2)*k]}
		st.nc = e.collapse(ep.Counts[seg.Control], st.ctl)
		st.nv = e.collapse(ep.Counts[variant], st.vr)
		if w != nil && ep.Number == w.Epoch {
			st.nc -= e.subtract(w.ControlCounts, st.ctl)
			st.nv -= e.subtract(w.VariantCounts, st.vr)
		}
		st.mc, st.mv = e.mean(st.ctl, st.nc), e.mean(st.vr, st.nv)
		buf.strata = append(buf.strata, st)
	}
	return buf.strata
}

// strataBuf holds the memory of one strata computation.
type strataBuf struct {
	strata []stratum
	counts []int64
}

// subtract removes counts (per score) from dst (per category), never below
// zero, and returns how many responses it removed.
func (e *Engine) subtract(counts []int64, dst []int64) int64 {
	var n int64
	for i, c := range counts {
		k := e.cat[i]
		c = min(c, dst[k])
		dst[k] -= c
		n += c
	}
	return n
}

func totals(strata []stratum) (nc, nv int64) {
	for _, st := range strata {
		nc += st.nc
		nv += st.nv
	}
	return nc, nv
}

// judgement is the decision part of an assessment, without intervals.
type judgement struct {
	verdict Verdict
	rule    Rule
	// recent is the window that decided, or the newest judged one (-1: none).
	recent int
	// z and info of the whole-run difference at the margin.
	z, info float64
}

// judge decides one variant: the claims at the margin only.
func (e *Engine) judge(seg Segment, variant string, variants int, strata []stratum, windowBuf *strataBuf) judgement {
	cfg := e.cfg
	b := cfg.ErrorBudgets(variants)
	margin := -cfg.MaxDrop / 100
	j := judgement{recent: -1}
	nc, nv := totals(strata)
	if nc < cfg.MinResponses || nv < cfg.MinResponses {
		j.verdict = InsufficientData
		return j
	}
	j.z, j.info = e.differenceStatistic(strata, margin)
	inferior := claimHolds(-j.z, j.info, e.tau2, b.Rollback)
	nonInferior := claimHolds(j.z, j.info, e.tau2, b.Advance)
	if inferior {
		j.rule = RuleMaxDrop
	}
	if cfg.Minimum != nil {
		counts := e.pooled(seg, variant)
		cats := make([]int64, len(e.values))
		n := e.collapse(counts, cats)
		m0 := e.minimumMean()
		z, info := e.scoreStatistic(cats, n, e.mean(cats, n), m0)
		if !inferior && claimHolds(-z, info, e.tau2, b.Minimum) {
			inferior, j.rule = true, RuleMinimum
		}
		nonInferior = nonInferior && claimHolds(z, info, e.tau2, b.Advance)
	}
	windows := seg.Windows[variant]
	for i := len(windows) - 1; i >= 0; i-- { // newest first
		w := &windows[i]
		ws := e.strata(seg, variant, w, windowBuf)
		wc, wv := totals(ws)
		if wc < cfg.MinResponses || wv < cfg.MinResponses {
			continue
		}
		if j.recent < 0 {
			j.recent = i
		}
		if inferior {
			break
		}
		z, info := e.differenceStatistic(ws, margin)
		if claimHolds(-z, info, e.tau2, b.RecentWindow(w.Index)) {
			inferior, j.rule, j.recent = true, RuleRecentMaxDrop, i
			break
		}
	}
	switch {
	case inferior:
		j.verdict = Inferior
	case nonInferior:
		j.verdict = NonInferior
	default:
		j.verdict = Inconclusive
	}
	return j
}

// minimumMean is Minimum in proportion units, kept strictly inside the
// metric's range so the fit under it is defined.
func (e *Engine) minimumMean() float64 {
	lo, hi := e.values[0], e.values[len(e.values)-1]
	m := *e.cfg.Minimum / 100
	const edge = 1e-6
	return math.Min(math.Max(m, lo+edge), hi-edge)
}

// Verdicts returns each variant's verdict and rule exactly as Evaluate
// decides them, without the intervals, and the windows after the look. It is
// the fast path for simulations; production code uses Evaluate.
func (e *Engine) Verdicts(seg Segment) ([]Verdict, []Rule, map[string][]Window, error) {
	if err := e.checkSegment(seg); err != nil {
		return nil, nil, nil, err
	}
	vs := make([]Verdict, len(seg.Variants))
	rs := make([]Rule, len(seg.Variants))
	for i, v := range seg.Variants {
		j := e.judge(seg, v, len(seg.Variants), e.strata(seg, v, nil, &e.bufs[0]), &e.bufs[1])
		vs[i], rs[i] = j.verdict, j.rule
	}
	return vs, rs, e.nextWindows(seg), nil
}

// Evaluate judges every variant of seg against the control (see the
// package-level Evaluate).
func (e *Engine) Evaluate(seg Segment) (SegmentResult, error) {
	if err := e.checkSegment(seg); err != nil {
		return SegmentResult{}, err
	}
	cfg := e.cfg
	k := len(seg.Variants)
	b := cfg.ErrorBudgets(k)
	out := SegmentResult{Control: e.armEstimate(seg, seg.Control, b)}
	for _, v := range seg.Variants {
		sbuf := e.strata(seg, v, nil, &e.bufs[0])
		j := e.judge(seg, v, k, sbuf, &e.bufs[1])
		est := e.armEstimate(seg, v, b)
		a := Assessment{
			Variant: v, Verdict: j.verdict, Rule: j.rule,
			Responses: est.Responses, Score: est.Score, ScoreInterval: est.Interval,
		}
		a.Difference = est.Score - out.Control.Score
		if j.info > 0 {
			a.Difference = -cfg.MaxDrop + j.z/j.info
		}
		if j.verdict != InsufficientData {
			a.DifferenceInterval = e.differenceInterval(sbuf, b)
			agree(&a.DifferenceInterval, j.z, j.info, -cfg.MaxDrop, e.tau2, b)
		}
		if j.recent >= 0 {
			a.Recent = e.recent(seg, v, j.recent, b, &e.bufs[1])
		}
		a.Explanation = explain(cfg, out.Control, a)
		out.Variants = append(out.Variants, a)
	}
	out.SampleRatio = e.sampleRatio(seg)
	out.Windows = e.nextWindows(seg)
	return out, nil
}

// armEstimate is an arm's score over the run with its interval.
func (e *Engine) armEstimate(seg Segment, arm string, b Budgets) ArmEstimate {
	counts := e.pooled(seg, arm)
	cats := make([]int64, len(e.values))
	n := e.collapse(counts, cats)
	m := e.mean(cats, n)
	a := ArmEstimate{Name: arm, Responses: n, Score: 100 * m}
	if n < e.cfg.MinResponses {
		return a
	}
	lo, hi := e.values[0], e.values[len(e.values)-1]
	const edge = 1e-9
	above := func(t float64) bool { // "score > t" holds
		z, info := e.scoreStatistic(cats, n, m, t)
		return claimHolds(z, info, e.tau2, b.Advance)
	}
	notBelow := func(t float64) bool { // "score < t" does not hold
		z, info := e.scoreStatistic(cats, n, m, t)
		return !claimHolds(-z, info, e.tau2, b.Minimum)
	}
	a.Interval = Interval{
		Lower: 100 * switchPoint(above, lo+edge, hi-edge),
		Upper: 100 * switchPoint(notBelow, lo+edge, hi-edge),
	}
	return a
}

// differenceInterval inverts the two claims about the difference.
func (e *Engine) differenceInterval(strata []stratum, b Budgets) Interval {
	span := e.values[len(e.values)-1] - e.values[0]
	const edge = 1e-9
	above := func(t float64) bool {
		z, info := e.differenceStatistic(strata, t)
		return claimHolds(z, info, e.tau2, b.Advance)
	}
	notBelow := func(t float64) bool {
		z, info := e.differenceStatistic(strata, t)
		return !claimHolds(-z, info, e.tau2, b.Rollback)
	}
	return Interval{
		Lower: 100 * switchPoint(above, -span+edge, span-edge),
		Upper: 100 * switchPoint(notBelow, -span+edge, span-edge),
	}
}

// agree nudges bounds located by bisection (to a thousandth of a point) so
// that they never contradict the claims checked exactly at the margin m
// (points): the interval lies below m exactly when "below m" holds, above m
// exactly when "above m" holds.
func agree(iv *Interval, z, info, m, tau2 float64, b Budgets) {
	const nudge = 1e-6
	below := claimHolds(-z, info, tau2, b.Rollback)
	above := claimHolds(z, info, tau2, b.Advance)
	switch {
	case below && iv.Upper >= m:
		iv.Upper = m - nudge
	case !below && iv.Upper < m:
		iv.Upper = m
	}
	switch {
	case above && iv.Lower <= m:
		iv.Lower = m + nudge
	case !above && iv.Lower > m:
		iv.Lower = m
	}
	iv.Lower = math.Min(iv.Lower, iv.Upper)
}

// recent reports window i of variant v.
func (e *Engine) recent(seg Segment, v string, i int, b Budgets, buf *strataBuf) *Recent {
	w := &seg.Windows[v][i]
	ws := e.strata(seg, v, w, buf)
	nc, nv := totals(ws)
	r := &Recent{Window: w.Index, Responses: nv, ControlResponses: nc}
	z, info := e.differenceStatistic(ws, -e.cfg.MaxDrop/100)
	if info > 0 {
		r.Difference = -e.cfg.MaxDrop + z/info
	}
	span := e.values[len(e.values)-1] - e.values[0]
	alpha := b.RecentWindow(w.Index)
	notBelow := func(t float64) bool {
		z, info := e.differenceStatistic(ws, t)
		return !claimHolds(-z, info, e.tau2, alpha)
	}
	r.UpperBound = 100 * switchPoint(notBelow, -span+1e-9, span-1e-9)
	return r
}

// explain renders one line such as
// "CSAT 74.1 [70.2, 78.0] vs control 86.0: difference -11.9 [-16.8, -7.0] lies below -3 (max drop): inferior after 412 responses".
func explain(cfg Config, ctl ArmEstimate, a Assessment) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", cfg.Metric, num(a.Score))
	if a.Verdict != InsufficientData {
		fmt.Fprintf(&b, " [%s, %s]", num(a.ScoreInterval.Lower), num(a.ScoreInterval.Upper))
	}
	fmt.Fprintf(&b, " vs control %s: difference %s", num(ctl.Score), num(a.Difference))
	if a.Verdict == InsufficientData {
		fmt.Fprintf(&b, ": insufficient data after %d responses (control %d), need %d per arm",
			a.Responses, ctl.Responses, cfg.MinResponses)
		return b.String()
	}
	fmt.Fprintf(&b, " [%s, %s] %s %s (max drop)", num(a.DifferenceInterval.Lower), num(a.DifferenceInterval.Upper),
		position(a.DifferenceInterval, -cfg.MaxDrop), threshold(-cfg.MaxDrop))
	if cfg.Minimum != nil {
		fmt.Fprintf(&b, " and the %s interval %s %s (minimum)", cfg.Metric, position(a.ScoreInterval, *cfg.Minimum), threshold(*cfg.Minimum))
	}
	if a.Rule == RuleRecentMaxDrop && a.Recent != nil {
		fmt.Fprintf(&b, "; over the last %d responses (window %d) the difference is %s, at most %s, below %s (max drop)",
			a.Recent.Responses, a.Recent.Window, num(a.Recent.Difference), num(a.Recent.UpperBound), threshold(-cfg.MaxDrop))
	}
	word := "inconclusive"
	switch a.Verdict {
	case Inferior:
		word = "inferior"
	case NonInferior:
		word = "non-inferior"
	}
	fmt.Fprintf(&b, ": %s after %d responses", word, a.Responses)
	return b.String()
}

func position(iv Interval, t float64) string {
	switch {
	case iv.Upper < t:
		return "lies below"
	case iv.Lower > t:
		return "lies above"
	default:
		return "straddles"
	}
}

// num formats a figure with one decimal, without printing "-0.0".
func num(x float64) string {
	s := strconv.FormatFloat(x, 'f', 1, 64)
	if s == "-0.0" {
		return "0.0"
	}
	return s
}

// threshold formats a configured threshold as the user wrote it (-3, 72.5).
func threshold(x float64) string {
	if x == 0 {
		x = 0 // turn -0 into 0
	}
	return strconv.FormatFloat(x, 'g', -1, 64)
}
