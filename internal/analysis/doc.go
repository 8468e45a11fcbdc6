// Package analysis is Rapport's decision engine: it turns per-score response
// tallies of a control and up to seven variants in one customer segment into a
// verdict per variant (Inferior, NonInferior, Inconclusive, InsufficientData).
//
// It owns the statistics only: no Kubernetes types, no I/O, no clock, standard
// library only. Callers bring tallies and a Config; Evaluate is a pure function
// and may be called after every batch of responses.
//
// # Metrics
//
// CSAT is the share of responses at or above Config.SatisfiedAtOrAbove, in
// points 0..100, with variance p(1-p)/n. NPS is % promoters (9-10) minus %
// detractors (0-6), in points -100..100, with variance ((p+d)-(p-d)²)/n. The
// difference of two arms has the sum of their variances. A one-category tally
// (say ten 5s) has a plug-in variance of zero, so the per-response variance is
// floored at q(1-q) with q = 1/(n+2) (see EstimateArm).
//
// # Method
//
// Re-running a fixed-horizon z-test after every batch inflates the false-alarm
// rate towards 1 as looks accumulate. Instead every interval is a confidence
// sequence from the normal-mixture mSPRT of Johari, Pekelis & Walsh ("Always
// Valid Inference: Continuous Monitoring of A/B Tests"), used with plug-in
// variances as an asymptotic confidence sequence in the spirit of
// Waudby-Smith et al. (arXiv:2103.06476). For an estimate with variance V and
// mixing variance tau² the half-width is
//
//	sqrt( 2·V·(V+tau²)/tau² · ln( sqrt((V+tau²)/V) / alpha ) )
//
// (HalfWidth). A variant is Inferior when the whole interval of
// variant - control lies below -MaxDrop, or the whole interval of its score
// lies below Minimum (when set); NonInferior when the difference's interval
// lies above -MaxDrop and, when Minimum is set, the score's interval lies above
// Minimum; otherwise Inconclusive. InsufficientData until both arms have
// MinResponses.
//
// # Guarantee
//
// With probability at least Confidence, every interval of the segment covers
// its true value at every look simultaneously, so no wrong verdict (Inferior
// for a variant within the margin, NonInferior for one beyond it) is ever
// reported, however often and for however long the segment is evaluated, and
// whether or not anyone acts on a verdict. The guarantee is time-uniform but
// asymptotic: it relies on the plug-in variances being close to the true ones
// and on the normal approximation, which is why MinResponses (100 by default)
// is required before any verdict. Simulations in the tests check it: false
// calls stay below 5% at 95% confidence with looks every 10 responses up to
// 20,000 per arm, where a naive z-test exceeds it.
//
// # Several variants
//
// 1-Confidence is split evenly (Bonferroni) over the non-control variants of
// the segment, and, when Minimum is set, over the two intervals each variant is
// judged on (Config.IntervalAlpha). A wrong verdict anywhere needs at least one
// interval to miss, so the family-wise error rate of the segment stays below
// 1-Confidence. Bonferroni is conservative when intervals are correlated
// through the shared control, which only makes it safer. Segments are judged
// independently; nothing is split across segments.
//
// # Mixing variance
//
// tau = MaxDrop points (at least 1). For an effect at distance delta from a
// threshold, the responses needed for the boundary to reach delta are smallest
// at tau² ≈ 0.9·delta², whatever the variance and alpha (0.89 at alpha 0.05,
// 0.93 at 0.05/7). An unchanged variant (to clear as NonInferior) and one
// dropping twice the margin (to roll back) both sit MaxDrop from the margin,
// so the boundary is tightest at the sample sizes where those calls are made;
// it is flat around that optimum (tau off by 2x costs at most ~15% more
// responses). tau² depends on the configuration only, never on the data, as
// the guarantee requires.
//
// # Planning
//
// RequiredResponses gives, deterministically from the same boundary, the
// responses per arm at which a given true drop is expected to be called;
// FixedHorizonResponses gives the classical single-look sample size for
// comparison. Continuous monitoring typically costs about 2.4x the responses
// of a single look at 50% power, in exchange for being allowed to look (and
// roll back) at any time.
package analysis
