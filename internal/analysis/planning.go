package analysis

import (
	"errors"
	"fmt"
	"math"
)

// maxPlan bounds the sample sizes the planners search.
const maxPlan int64 = 1 << 40

// RequiredResponses estimates the responses per arm after which a variant
// whose true score is drop points below a control at baseline points gets its
// verdict: Inferior when drop > MaxDrop, NonInferior when drop < MaxDrop (a
// negative drop is an improvement). It is the first n >= MinResponses at which
// the always-valid half-width of the difference, computed exactly as Evaluate
// does for one variant, is no wider than |drop - MaxDrop|: the point where the
// expected difference reaches the boundary. It is deterministic and tends to
// sit a little above the median stopping time, because noisy paths cross
// earlier. It plans the max-drop rule for one variant; the Minimum rule is not
// planned, though a set Minimum halves alpha as in Evaluate.
//
// CSAT variances are p(1-p) at the baseline and at baseline-drop. For NPS the
// promoter/detractor split is unknown, so the variance is bounded by 1-NPS²
// (no passives): the NPS plan is an upper bound, typically 1.5-2x the median.
func RequiredResponses(cfg Config, baseline, drop float64) (int64, error) {
	s2, dist, err := planInputs(cfg, baseline, drop)
	if err != nil {
		return 0, err
	}
	hw := cfg.halfWidthFunc(1)
	reached := func(n int64) bool { return hw(s2/float64(n)) <= dist }
	lo := cfg.MinResponses
	if reached(lo) {
		return lo, nil
	}
	hi := lo
	for !reached(hi) {
		if hi >= maxPlan {
			return 0, fmt.Errorf("analysis: a drop of %g points cannot be called within %d responses", drop, maxPlan)
		}
		lo, hi = hi, 2*hi
	}
	for hi-lo > 1 { // invariant: !reached(lo), reached(hi); the half-width falls with n
		mid := lo + (hi-lo)/2
		if reached(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, nil
}

// FixedHorizonResponses is the classical fixed-sample size per arm for the same
// comparison: one look, after n responses per arm, with the two-sided
// Confidence interval of a z-test (so one-sided alpha = (1-Confidence)/2, the
// usual non-inferiority convention, halved again when Minimum is set as in
// Evaluate), reaching the given power (0.5 <= power < 1):
//
//	n = (z(1-alpha/2) + z(power))² · (σ²control + σ²variant) / (drop - MaxDrop)²
//
// with the same variances as RequiredResponses. It ignores MinResponses. Use it
// to compare what continuous monitoring costs; it is not valid to look at the
// z-test more than once.
func FixedHorizonResponses(cfg Config, baseline, drop, power float64) (int64, error) {
	if !(power >= 0.5 && power < 1) {
		return 0, fmt.Errorf("analysis: power must be in [0.5, 1), got %g", power)
	}
	s2, dist, err := planInputs(cfg, baseline, drop)
	if err != nil {
		return 0, err
	}
	z := normalQuantile(1-cfg.IntervalAlpha(1)/2) + normalQuantile(power)
	n := math.Ceil(z * z * s2 / (dist * dist))
	if n > float64(maxPlan) {
		return 0, fmt.Errorf("analysis: a drop of %g points cannot be called within %d responses", drop, maxPlan)
	}
	return max(int64(n), 1), nil
}

// planInputs returns the per-response variance of the difference (points²) and
// the distance from the expected difference to -MaxDrop.
func planInputs(cfg Config, baseline, drop float64) (s2, dist float64, err error) {
	if err := cfg.Validate(); err != nil {
		return 0, 0, err
	}
	lo, hi := cfg.Metric.pointRange()
	variant := baseline - drop
	switch {
	case !(baseline >= lo && baseline <= hi):
		return 0, 0, fmt.Errorf("analysis: baseline must be in %g..%g points, got %g", lo, hi, baseline)
	case !(variant >= lo && variant <= hi):
		return 0, 0, fmt.Errorf("analysis: baseline - drop must be in %g..%g points, got %g", lo, hi, variant)
	case drop == cfg.MaxDrop:
		return 0, 0, errors.New("analysis: a drop equal to MaxDrop can never be called either way")
	}
	perResponse := func(score float64) float64 {
		x := score / 100
		if cfg.Metric == NPS {
			return 1 - x*x
		}
		return x * (1 - x)
	}
	return 1e4 * (perResponse(baseline) + perResponse(variant)), math.Abs(drop - cfg.MaxDrop), nil
}

// normalQuantile is the inverse of the standard normal distribution function.
func normalQuantile(p float64) float64 {
	return math.Sqrt2 * math.Erfinv(2*p-1)
}
