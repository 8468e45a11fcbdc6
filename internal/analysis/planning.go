package analysis

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// PlanInput describes one comparison to plan: a control and a variant with
// constant true scores, at constant weights.
type PlanInput struct {
	// Baseline is the control's true score in points.
	Baseline float64
	// Drop is how many points the variant's true score lies below the
	// control's (negative: an improvement). It must differ from MaxDrop.
	Drop float64
	// Passives is the share of passives (NPS only), in percent of both arms'
	// responses; promoters and detractors make up the rest around the score.
	Passives float64
	// VariantWeight and ControlWeight are the percentages of the segment's
	// traffic the variant and the control receive (e.g. 5 and 95 at a first
	// step of 5%; 25 and 50 with two variants at 25%).
	VariantWeight, ControlWeight int32
	// Variants is the number of non-control variants judged in the
	// segment (it sets the error budgets, see ErrorBudgets); 0 means 1.
	Variants int
	// Power of the fixed-horizon comparison (0.5..0.99); 0 means 0.8.
	Power float64
}

// PlanPoint is a number of responses: of the segment (every arm together,
// including variants not planned), of the variant and of the control.
type PlanPoint struct {
	Segment, Variant, Control int64
}

// Plan is when a comparison is expected to reach its verdict.
type Plan struct {
	// Verdict is the right call: Inferior when Drop > MaxDrop, else NonInferior.
	Verdict Verdict
	// Median, P80 and P90 are when 50%, 80% and 90% of runs have reached the
	// verdict (Reached says which of them exist).
	Median, P80, P90 PlanPoint
	// Reached is the share of simulated runs that reached the verdict
	// within the planner's horizon (planHorizon responses of the segment).
	Reached float64
	// FixedHorizon is the segment's responses a classical single-look
	// z-test at the same one-sided error rate needs for PlanInput.Power, for
	// comparison: always-valid monitoring costs more responses in exchange
	// for the right to look (and roll back) at any time.
	FixedHorizon int64
}

const (
	planPaths   = 2000
	planSeed    = 20261129
	planHorizon = int64(1) << 32 // responses of the segment
	planDense   = 200_000        // looks every lookEvery responses up to here, then sparser
	lookEvery   = 10
)

// PlanComparison estimates when a comparison reaches its verdict, by
// simulating the engine's whole-run test on the normal approximation of the
// data: the difference's estimate moves as a Brownian motion around the true
// difference with the true variance, and is judged at every look (every 10
// responses of the segment, as in the simulations) against the same
// one-sided boundaries, with variances fitted at the margin, as Evaluate.
// The paths are seeded, so a plan is deterministic. Within a step the
// weights are constant; a variant beyond the margin never advances, so its
// rollback is planned at the first step's weights.
//
// It plans the max-drop rule only (not Minimum, not the recent-evidence
// windows, which only speed a rollback up).
func PlanComparison(cfg Config, in PlanInput) (Plan, error) {
	e, err := NewEngine(cfg)
	if err != nil {
		return Plan{}, err
	}
	if in.Variants == 0 {
		in.Variants = 1
	}
	if in.Power == 0 {
		in.Power = 0.8
	}
	if !(in.Power >= 0.5 && in.Power < 1) {
		return Plan{}, fmt.Errorf("analysis: power must be in [0.5, 1), got %g", in.Power)
	}
	sc, sv, rc, rv, err := e.planVariances(in)
	if err != nil {
		return Plan{}, err
	}
	wc, wv := float64(in.ControlWeight)/100, float64(in.VariantWeight)/100
	b := cfg.ErrorBudgets(in.Variants)
	inferior := in.Drop > cfg.MaxDrop
	p := Plan{Verdict: NonInferior}
	alpha, sign := b.Advance, 1.0
	if inferior {
		p.Verdict, alpha, sign = Inferior, b.Rollback, -1
	}
	// Per response of the segment: variance of the difference's estimate
	// (true) and of its fit at the margin (what the test uses).
	s2 := 1e4 * (sc/wc + sv/wv)
	r2 := 1e4 * (rc/wc + rv/wv)
	delta, margin := -in.Drop, -cfg.MaxDrop
	first := max(int64(math.Ceil(float64(cfg.MinResponses)/min(wc, wv))), lookEvery)
	first = (first + lookEvery - 1) / lookEvery * lookEvery
	rng := rand.New(rand.NewPCG(planSeed, math.Float64bits(in.Drop)))
	var times []int64
	logA := -math.Log(alpha)
	for range planPaths {
		var walk float64 // sum of the estimate's errors, times n
		n := int64(0)
		for n < planHorizon {
			next := n + lookEvery
			if n >= planDense {
				next = n + max(n/100, lookEvery)
			}
			if next < first {
				next = first
			}
			walk += math.Sqrt(s2*float64(next-n)) * rng.NormFloat64()
			n = next
			d := delta + walk/float64(n)
			info := float64(n) / r2
			z := (d - margin) * info
			if logOneSided(sign*z, info, e.tau2) >= logA && sign*z > 0 {
				times = append(times, n)
				break
			}
		}
	}
	p.Reached = float64(len(times)) / planPaths
	slices.Sort(times)
	at := func(q float64) PlanPoint {
		i := int(math.Ceil(q*planPaths)) - 1
		if i >= len(times) {
			return PlanPoint{}
		}
		n := times[i]
		return PlanPoint{Segment: n, Variant: int64(math.Round(float64(n) * wv)), Control: int64(math.Round(float64(n) * wc))}
	}
	p.Median, p.P80, p.P90 = at(0.5), at(0.8), at(0.9)
	z := normalQuantile(1-alpha) + normalQuantile(in.Power)
	dist := math.Abs(in.Drop - cfg.MaxDrop)
	p.FixedHorizon = int64(math.Ceil(z * z * s2 / (dist * dist)))
	return p, nil
}

// planVariances returns the per-response variances of the control and the
// variant at their true shares (sc, sv) and at the fit under the margin
// (rc, rv), in proportion units².
func (e *Engine) planVariances(in PlanInput) (sc, sv, rc, rv float64, err error) {
	cfg := e.cfg
	switch {
	case in.VariantWeight < 1 || in.ControlWeight < 1 || in.VariantWeight+in.ControlWeight > 100:
		return 0, 0, 0, 0, fmt.Errorf("analysis: weights must be 1..100 percent and add up to at most 100, got variant %d and control %d",
			in.VariantWeight, in.ControlWeight)
	case in.Drop == cfg.MaxDrop:
		return 0, 0, 0, 0, errors.New("analysis: a drop equal to MaxDrop can never be called either way")
	case !(in.Passives >= 0 && in.Passives < 100):
		return 0, 0, 0, 0, fmt.Errorf("analysis: passives must be in 0..100 percent, got %g", in.Passives)
	}
	ctl, err := e.planShares(in.Baseline, in.Passives)
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("analysis: baseline: %w", err)
	}
	vr, err := e.planShares(in.Baseline-in.Drop, in.Passives)
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("analysis: baseline - drop: %w", err)
	}
	_, sc = armMoments(e.values, ctl)
	_, sv = armMoments(e.values, vr)
	// Expected counts of a large sample at the weights, fitted at the margin.
	const n = 1e7
	toCounts := func(p []float64, w int32) []int64 {
		out := make([]int64, len(p))
		for k, pk := range p {
			out[k] = int64(math.Round(pk * n * float64(w) / 100))
		}
		return out
	}
	rc, rv = e.fit.twoArms(e.values, toCounts(ctl, in.ControlWeight), toCounts(vr, in.VariantWeight), -cfg.MaxDrop/100)
	return sc, sv, rc, rv, nil
}

// planShares returns category shares with the given score: for NPS,
// promoters and detractors around the passives.
func (e *Engine) planShares(score, passives float64) ([]float64, error) {
	lo, hi := e.cfg.Metric.pointRange()
	if !(score > lo && score < hi) {
		return nil, fmt.Errorf("must be strictly inside %g..%g points, got %g", lo, hi, score)
	}
	if e.cfg.Metric == CSAT {
		return []float64{1 - score/100, score / 100}, nil
	}
	rest := 1 - passives/100
	prom := (rest + score/100) / 2
	det := rest - prom
	if prom <= 0 || det <= 0 {
		return nil, fmt.Errorf("NPS %g is impossible with %g%% passives", score, passives)
	}
	return []float64{det, passives / 100, prom}, nil
}

// normalQuantile is the inverse of the standard normal distribution function.
func normalQuantile(p float64) float64 {
	return math.Sqrt2 * math.Erfinv(2*p-1)
}
