package analysis

import (
	"math"
	"slices"
)

// SampleRatioAlpha is the sample-ratio test's false-alarm rate over a whole
// run of an experiment: it is split evenly across the experiment's segments.
const SampleRatioAlpha = 0.001

// sampleRatioConcentration is the concentration c of the Dirichlet prior
// (centred on the expected shares) of the sample-ratio test. Chosen by
// simulation (test/bench/stats): it must catch a variant whose answers
// arrive at 70% of the expected rate within 5,000 responses at weight 25%.
const sampleRatioConcentration = 100.0

// SampleRatio is the sample-ratio-mismatch test of one segment: do the
// responses per arm match the shares the weights predict?
//
// Per epoch with known weights, the arms with a positive weight are
// compared with the shares weight/sum(weights) by the sequential multinomial
// test of Lindon & Malek ("Anytime-valid inference for multinomial count
// data", NeurIPS 2022): the Bayes factor of a Dirichlet-multinomial (prior
// Dirichlet(c·shares)) against the multinomial with the expected shares. It
// is a non-negative martingale under the null, as is the product over
// epochs, so by Ville's inequality it ever reaches 1/alpha with probability
// at most alpha: exact, not asymptotic, however often it is looked at.
//
// A mismatch means the comparison may be biased: answers of one variant are
// lost or duplicated (a broken survey on one variant, a caching layer serving
// one variant's page, stickiness moving customers between arms). The segment
// must not advance or be promoted until it is understood.
type SampleRatio struct {
	// LogEvidence is the log Bayes factor against the expected shares,
	// summed over the epochs with known weights.
	LogEvidence float64
	// Threshold is log(1/alpha) for the segment's share of SampleRatioAlpha.
	Threshold float64
	// Mismatch is LogEvidence >= Threshold.
	Mismatch bool
	// Epoch is the epoch with the strongest evidence (0 when none was
	// tested), with its responses among arms expected to answer and each
	// such arm's observed and expected share of them, in percent.
	Epoch              int32
	Responses          int64
	Observed, Expected map[string]float64
}

// SampleRatio runs the sample-ratio test alone (Evaluate includes it).
func (e *Engine) SampleRatio(seg Segment) SampleRatio { return e.sampleRatio(seg) }

// sampleRatio runs the test over seg's epochs.
func (e *Engine) sampleRatio(seg Segment) SampleRatio {
	alpha := SampleRatioAlpha / float64(max(e.cfg.Segments, 1))
	out := SampleRatio{Threshold: -math.Log(alpha)}
	best := math.Inf(-1)
	arms := append([]string{seg.Control}, seg.Variants...)
	for _, ep := range seg.Epochs {
		names, shares, counts := expectedShares(ep, arms)
		if len(names) < 2 {
			continue
		}
		lbf, n := logDirichletBayesFactor(shares, counts, sampleRatioConcentration)
		out.LogEvidence += lbf
		if n > 0 && lbf > best {
			best = lbf
			out.Epoch, out.Responses = ep.Number, n
			out.Observed, out.Expected = map[string]float64{}, map[string]float64{}
			for i, a := range names {
				out.Observed[a] = 100 * float64(counts[i]) / float64(n)
				out.Expected[a] = 100 * shares[i]
			}
		}
	}
	out.Mismatch = out.LogEvidence >= out.Threshold
	return out
}

// expectedShares returns the arms of an epoch with a positive weight, their
// expected shares and their responses.
func expectedShares(ep Epoch, arms []string) (names []string, shares []float64, counts []int64) {
	if ep.Weights == nil {
		return nil, nil, nil
	}
	var total float64
	for _, a := range arms {
		if w := ep.Weights[a]; w > 0 {
			names = append(names, a)
			total += float64(w)
		}
	}
	for _, a := range names {
		shares = append(shares, float64(ep.Weights[a])/total)
		var n int64
		for _, c := range ep.Counts[a] {
			n += c
		}
		counts = append(counts, n)
	}
	return slices.Clip(names), shares, counts
}

// logDirichletBayesFactor is the log Bayes factor of Dirichlet(c·shares)-
// multinomial against multinomial(shares) for counts, and their total.
func logDirichletBayesFactor(shares []float64, counts []int64, c float64) (float64, int64) {
	var n int64
	var lbf float64
	for i, p := range shares {
		x := float64(counts[i])
		n += counts[i]
		lbf += lgamma(c*p+x) - lgamma(c*p) - x*math.Log(p)
	}
	lbf += lgamma(c) - lgamma(c+float64(n))
	return lbf, n
}

func lgamma(x float64) float64 {
	v, _ := math.Lgamma(x)
	return v
}
