package analysis

import "math"

// Budgets are the error rates the claims of one segment are made at, from
// Config.Confidence (alpha = 1 - Confidence), the number of variants K
// judged in the segment, the number of segments S, and m = 2 when Minimum is
// set (two rules per variant), else 1:
//
//   - Advance: each "non-inferior" claim (the difference above -MaxDrop, and
//     the score above Minimum) is made at alpha/(S·K·m). A variant is
//     advanced or promoted only on these claims, so the chance that ANY
//     variant beyond the margin in ANY segment is ever advanced or promoted is
//     at most alpha: the guarantee is family-wise over the experiment.
//   - Rollback: each "inferior" rule is made at alpha/(K·m) per segment. The
//     max-drop rule spends (1-RecentShare) of it on the whole-run comparison
//     and RecentShare on the recent-evidence windows, window k spending
//     RecentShare·alpha/(K·m)/(k(k+1)) (these sum to RecentShare·alpha/(K·m)).
//     So in each segment the chance of ever rolling back a variant that is
//     within the margin is at most alpha, however long the run.
//
// Rollbacks are held per segment, not family-wise: a false rollback costs
// time (the segment keeps the control), never customers, and splitting the
// rollback budget over segments would delay every real rollback.
type Budgets struct {
	// Advance is the error rate of each non-inferior claim.
	Advance float64
	// Rollback is the error rate of the whole-run max-drop claim.
	Rollback float64
	// Minimum is the error rate of the below-minimum claim.
	Minimum float64
	// recent is the budget shared by the recent-evidence windows.
	recent float64
}

// RecentShare is the share of the max-drop rollback budget spent on the
// recent-evidence windows (see Budgets). Chosen by simulation (test/bench):
// it barely slows the whole-run test (the boundary grows with the log of the
// budget) and lets a regression that begins late be caught within a few
// times the responses a drop from the start needs.
const RecentShare = 0.2

// ErrorBudgets returns the budgets for a segment judging that many
// non-control variants.
func (c Config) ErrorBudgets(variants int) Budgets {
	alpha := 1 - c.Confidence
	k := float64(max(variants, 1))
	if c.Minimum != nil {
		k *= 2
	}
	perRule := alpha / k
	return Budgets{
		Advance:  perRule / float64(max(c.Segments, 1)),
		Rollback: perRule * (1 - RecentShare),
		Minimum:  perRule,
		recent:   perRule * RecentShare,
	}
}

// RecentWindow is the error rate of recent-evidence window k (1-based).
func (b Budgets) RecentWindow(k int32) float64 {
	kk := float64(max(k, 1))
	return b.recent / (kk * (kk + 1))
}

// tauFactor scales the mixing standard deviation: tau = tauFactor·MaxDrop
// points (at least minTau). Chosen by simulation (test/bench/stats).
const tauFactor = 1.25

// minTau is the smallest mixing standard deviation, in points, so that a
// MaxDrop of 0 still gives a usable boundary.
const minTau = 1.0

// MixingVariance is tau², in points², of every claim's mixture (see
// sequential.go): tau = MaxDrop (at least 1 point). For an effect at
// distance delta from a threshold, the information at which the boundary is
// reached is smallest for tau near delta; the two cases a margin is designed
// around (an unchanged variant to clear, a variant dropping twice the margin
// to roll back) both sit MaxDrop from it. It depends on the configuration
// only, never on the data, as the guarantee requires.
func (c Config) MixingVariance() float64 {
	t := math.Max(tauFactor*c.MaxDrop, minTau)
	return t * t
}
