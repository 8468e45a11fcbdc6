package analysis

import (
	"errors"
	"fmt"
	"math"
)

// Estimate is one arm's score and the variance of that score, both in points
// (variance in points²).
type Estimate struct {
	Responses int64
	// Score is the plain estimate (share satisfied, or % promoters - % detractors);
	// 0 when there are no responses.
	Score float64
	// Variance is the plug-in variance of Score, floored (see EstimateArm) so
	// that it is always positive and finite.
	Variance float64
}

// EstimateArm returns the score of one arm and its variance.
//
// CSAT: p = satisfied/n, variance p(1-p)/n. NPS: with promoter share p and
// detractor share d, variance ((p+d) - (p-d)²)/n. Both are scaled by 100² into
// points².
//
// A tally such as 10 responses that are all 5s has a plug-in variance of zero,
// which would give a zero-width interval and a verdict from almost no evidence.
// The per-response variance is therefore floored at q(1-q) with q = 1/(n+2):
// the variance as if one of n+2 responses sat one category away (a Laplace /
// Agresti-Coull-like continuity adjustment). It only binds when every
// response falls into one category (for NPS: all promoters, all passives or
// all detractors), so it leaves every other tally at its textbook variance, and
// it vanishes as n grows. With no responses the variance is 2500 points²
// (0.25, one response's worth), so downstream intervals span the whole range
// instead of becoming NaN.
func EstimateArm(cfg Config, arm Arm) (Estimate, error) {
	if err := cfg.Validate(); err != nil {
		return Estimate{}, err
	}
	return estimate(cfg, arm)
}

// estimate is EstimateArm for an already validated cfg.
func estimate(cfg Config, arm Arm) (Estimate, error) {
	if want := cfg.ScaleMax - cfg.ScaleMin + 1; len(arm.Counts) != want {
		return Estimate{}, fmt.Errorf("analysis: arm %q has %d counts, want %d (scores %d..%d)",
			arm.Name, len(arm.Counts), want, cfg.ScaleMin, cfg.ScaleMax)
	}
	var n, pos, neg int64 // responses, satisfied or promoters, detractors
	for i, c := range arm.Counts {
		score := cfg.ScaleMin + i
		if c < 0 {
			return Estimate{}, fmt.Errorf("analysis: arm %q has a negative count (%d) for score %d", arm.Name, c, score)
		}
		if c > math.MaxInt64-n {
			return Estimate{}, fmt.Errorf("analysis: arm %q has too many responses to count", arm.Name)
		}
		n += c
		switch {
		case cfg.Metric == CSAT && score >= cfg.SatisfiedAtOrAbove:
			pos += c
		case cfg.Metric == NPS && score >= 9:
			pos += c
		case cfg.Metric == NPS && score <= 6:
			neg += c
		}
	}
	fn, fpos, fneg := float64(n), float64(pos), float64(neg)
	var score, perResponse float64 // proportion units
	if n > 0 {
		p, d := fpos/fn, fneg/fn // d stays 0 for CSAT
		if cfg.Metric == CSAT {
			score, perResponse = p, p*(1-p)
		} else {
			score, perResponse = p-d, (p+d)-(p-d)*(p-d)
		}
	}
	q := 1 / (fn + 2)
	perResponse = math.Max(perResponse, q*(1-q))
	return Estimate{
		Responses: n,
		Score:     100 * score,
		Variance:  1e4 * perResponse / math.Max(fn, 1),
	}, nil
}

// HalfWidth is the half-width of the always-valid (time-uniform) confidence
// sequence of Johari, Pekelis & Walsh's normal-mixture mSPRT for an
// asymptotically normal estimator with variance v, mixing variance tau2 (same
// units as v) and error rate alpha:
//
//	sqrt( 2·v·(v+tau2)/tau2 · ln( sqrt((v+tau2)/v) / alpha ) )
//
// The true value lies outside estimate ± HalfWidth at some time, ever, with
// probability at most alpha (asymptotically, with plug-in variances). A zero
// variance gives a zero width.
func HalfWidth(v, tau2, alpha float64) (float64, error) {
	switch {
	case !(v >= 0) || math.IsInf(v, 1):
		return 0, fmt.Errorf("analysis: variance must be finite and >= 0, got %g", v)
	case !(tau2 > 0) || math.IsInf(tau2, 1):
		return 0, fmt.Errorf("analysis: mixing variance must be finite and > 0, got %g", tau2)
	case !(alpha > 0 && alpha < 1):
		return 0, errors.New("analysis: alpha must be strictly between 0 and 1")
	}
	return halfWidth(v, tau2, alpha), nil
}

func halfWidth(v, tau2, alpha float64) float64 {
	if v == 0 {
		return 0
	}
	// ln(sqrt((v+tau2)/v)/alpha) written with Log1p to stay accurate for v >> tau2.
	return math.Sqrt(2 * v * (v + tau2) / tau2 * (0.5*math.Log1p(tau2/v) - math.Log(alpha)))
}

// minTau is the smallest mixing standard deviation, in points, so that a
// MaxDrop of 0 still gives a usable boundary.
const minTau = 1.0

// MixingVariance is tau², in points², used for every interval: tau = MaxDrop
// (at least 1 point).
//
// Why: for an effect at distance delta from a threshold, the sample size at
// which the boundary reaches delta is smallest when tau² ≈ 0.9·delta² (0.89 at
// alpha 0.05, 0.93 at 0.05/7), i.e. tau ≈ delta whatever the variance. The two
// cases a margin is designed around both sit at distance MaxDrop from it: an
// unchanged variant (to be cleared as NonInferior) and a variant dropping twice
// the margin (to be rolled back). The boundary is flat around its optimum
// (tau off by a factor 2 costs at most ~15% more responses), so this is a safe
// default for other effects too. It depends on the configuration only, never
// on the data, which the guarantee requires.
func (c Config) MixingVariance() float64 {
	t := math.Max(c.MaxDrop, minTau)
	return t * t
}

// IntervalAlpha is the error rate of each interval when that many non-control
// variants are judged together: 1-Confidence split (Bonferroni) across the
// variants, and across the two intervals each variant is judged on when
// Minimum is set. A wrong verdict for any variant needs at least one interval
// to miss, so the chance of any wrong verdict in the segment, ever, stays
// below 1-Confidence.
func (c Config) IntervalAlpha(variants int) float64 {
	k := max(variants, 1)
	if c.Minimum != nil {
		k *= 2
	}
	return (1 - c.Confidence) / float64(k)
}

func (c Config) halfWidthFunc(variants int) func(float64) float64 {
	tau2, alpha := c.MixingVariance(), c.IntervalAlpha(variants)
	return func(v float64) float64 { return halfWidth(v, tau2, alpha) }
}

type decision struct {
	verdict     Verdict
	difference  float64
	score, diff Interval
}

// decide applies the verdict rules to a variant and the control, with hw
// giving the interval half-width for a variance. Tests pass a fixed-horizon z
// half-width here to show why it must not be used.
func decide(cfg Config, ctl, v Estimate, hw func(float64) float64) decision {
	lo, hi := cfg.Metric.pointRange()
	span := hi - lo
	d := decision{difference: v.Score - ctl.Score}
	h := hw(v.Variance)
	d.score = clip(Interval{v.Score - h, v.Score + h}, lo, hi)
	h = hw(v.Variance + ctl.Variance) // the arms are independent
	d.diff = clip(Interval{d.difference - h, d.difference + h}, -span, span)

	margin := -cfg.MaxDrop
	switch {
	case v.Responses < cfg.MinResponses || ctl.Responses < cfg.MinResponses:
		d.verdict = InsufficientData
	case d.diff.Upper < margin || (cfg.Minimum != nil && d.score.Upper < *cfg.Minimum):
		d.verdict = Inferior
	case d.diff.Lower > margin && (cfg.Minimum == nil || d.score.Lower > *cfg.Minimum):
		d.verdict = NonInferior
	default:
		d.verdict = Inconclusive
	}
	return d
}
