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

// Config describes how one segment of an experiment is judged.
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
	// Confidence is the probability that no wrong verdict is ever reported for the
	// segment, however often it is evaluated (e.g. 0.95).
	Confidence float64
	// MinResponses is the number of responses each arm needs before any verdict.
	// The method is asymptotic: this keeps plug-in variances away from tiny samples.
	MinResponses int64
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
	if !(c.MaxDrop >= 0 && c.MaxDrop <= hi-lo) {
		bad("MaxDrop", "must be in 0..%g points, got %g", hi-lo, c.MaxDrop)
	}
	if !(c.Confidence > 0 && c.Confidence < 1) {
		bad("Confidence", "must be strictly between 0 and 1 (e.g. 0.95), got %g", c.Confidence)
	}
	if c.MinResponses < 1 {
		bad("MinResponses", "must be at least 1, got %d", c.MinResponses)
	}
	return errors.Join(errs...)
}

// Arm is the tally of one arm: Counts[i] is the number of responses with score
// ScaleMin+i.
type Arm struct {
	Name   string
	Counts []int64
}

// Verdict is the outcome for one variant.
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

// Interval is a closed interval in points.
type Interval struct{ Lower, Upper float64 }

// Assessment is the verdict for one variant against the control. All figures are
// in points; intervals are always-valid (see the package documentation) at the
// per-interval level given by Config.IntervalAlpha, and are clipped to the
// metric's range.
type Assessment struct {
	Variant            string
	Verdict            Verdict
	Responses          int64
	Score              float64
	ScoreInterval      Interval
	ControlScore       float64
	ControlResponses   int64
	Difference         float64 // variant - control
	DifferenceInterval Interval
	Explanation        string
}

// Evaluate judges every variant against the control for one segment. It may be
// called after every batch of responses: the error rate stated by
// cfg.Confidence holds over all calls together, for the segment as a whole, as
// long as cfg and the set of variants stay the same between calls.
func Evaluate(cfg Config, control Arm, variants []Arm) ([]Assessment, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(variants) == 0 || len(variants) > MaxVariants {
		return nil, fmt.Errorf("analysis: need 1..%d variants besides the control, got %d", MaxVariants, len(variants))
	}
	// Names identify arms in errors and assessments, so they must be unambiguous.
	for i, a := range variants {
		if a.Name == "" || control.Name == "" {
			return nil, errors.New("analysis: every arm needs a name")
		}
		if a.Name == control.Name || slices.ContainsFunc(variants[:i], func(b Arm) bool { return b.Name == a.Name }) {
			return nil, fmt.Errorf("analysis: arm name %q is used twice", a.Name)
		}
	}
	ctl, err := estimate(cfg, control)
	if err != nil {
		return nil, err
	}
	ests := make([]Estimate, len(variants))
	for i, a := range variants {
		if ests[i], err = estimate(cfg, a); err != nil {
			return nil, err
		}
	}
	hw := cfg.halfWidthFunc(len(variants))
	out := make([]Assessment, len(variants))
	for i, v := range ests {
		d := decide(cfg, ctl, v, hw)
		a := Assessment{
			Variant:            variants[i].Name,
			Verdict:            d.verdict,
			Responses:          v.Responses,
			Score:              v.Score,
			ScoreInterval:      d.score,
			ControlScore:       ctl.Score,
			ControlResponses:   ctl.Responses,
			Difference:         d.difference,
			DifferenceInterval: d.diff,
		}
		a.Explanation = explain(cfg, a)
		out[i] = a
	}
	return out, nil
}

// explain renders one line such as
// "CSAT 74.1 [70.2, 78.0] vs control 86.0: difference -11.9 [-16.8, -7.0] lies below -3 (max drop): inferior after 412 responses".
func explain(cfg Config, a Assessment) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s [%s, %s] vs control %s: difference %s [%s, %s]",
		cfg.Metric, num(a.Score), num(a.ScoreInterval.Lower), num(a.ScoreInterval.Upper),
		num(a.ControlScore), num(a.Difference), num(a.DifferenceInterval.Lower), num(a.DifferenceInterval.Upper))
	if a.Verdict == InsufficientData {
		fmt.Fprintf(&b, ": insufficient data after %d responses (control %d), need %d per arm",
			a.Responses, a.ControlResponses, cfg.MinResponses)
		return b.String()
	}
	fmt.Fprintf(&b, " %s %s (max drop)", position(a.DifferenceInterval, -cfg.MaxDrop), threshold(-cfg.MaxDrop))
	if cfg.Minimum != nil {
		fmt.Fprintf(&b, " and the %s interval %s %s (minimum)", cfg.Metric, position(a.ScoreInterval, *cfg.Minimum), threshold(*cfg.Minimum))
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

// clip keeps an interval inside [lo, hi]. The true value always lies in that
// range, so clipping never changes coverage nor, for thresholds inside the
// range, any verdict.
func clip(iv Interval, lo, hi float64) Interval {
	return Interval{Lower: math.Min(math.Max(iv.Lower, lo), hi), Upper: math.Max(math.Min(iv.Upper, hi), lo)}
}
