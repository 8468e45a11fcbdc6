// Package analysis is Rapport's decision engine: it turns the responses of a
// control and up to seven variants in one customer segment, counted per
// score and per allocation epoch, into a verdict per variant (Inferior,
// NonInferior, Inconclusive, InsufficientData), a sample-ratio test, and the
// intervals behind them.
//
// It owns the statistics only: no Kubernetes types, no I/O, no clock,
// standard library only. Callers bring counts and a Config; Evaluate is a
// pure function and may be called after every batch of responses.
//
// # Metrics
//
// CSAT is the share of responses at or above Config.SatisfiedAtOrAbove, in
// points 0..100. NPS is % promoters (9-10) minus % detractors (0-6), in
// points -100..100. Internally a response falls into a category (CSAT: not
// satisfied 0, satisfied 1; NPS: detractor -1, passive 0, promoter +1) and a
// score is the mean of the categories' values.
//
// # Claims, not intervals
//
// A verdict rests on one-sided claims about the difference
// d = variant - control, each at its own error budget (see Budgets):
//
//   - "d < -MaxDrop" (Inferior, roll back), and the same over a recent
//     window of the run (RuleRecentMaxDrop);
//   - "d > -MaxDrop" (NonInferior, may advance and be promoted);
//   - with Minimum set, "score < Minimum" (Inferior) and "score > Minimum"
//     (needed for NonInferior).
//
// Each claim is a sequential test of its null hypothesis at the threshold:
// the evidence Z and information I (sequential.go) are tested with a
// one-sided normal-mixture martingale, which ever reaches 1/alpha with
// probability at most alpha under the null, however often it is looked at
// (Ville's inequality). A one-sided claim spends all of its budget on one
// side, where one two-sided interval holds each side near alpha/2: the same
// drop is called with fewer responses. The intervals reported are the
// switch points of the claims (the lower bound at the advance budget, the
// upper at the rollback budget), so they always agree with the verdict.
//
// # Variances under the hypothesis
//
// The variance of each comparison is that of the most likely distributions
// given the data and the null hypothesis (restricted.go: Farrington &
// Manning 1990 and Miettinen & Nurminen 1985 for two proportions, the same
// Lagrangian solution for NPS's three categories), with half a response
// added to every category (the Jeffreys prior). A plug-in variance narrows
// a lucky small arm's interval, because the variance is estimated from the
// same lucky share; the restricted variance does not.
//
// # Allocation epochs
//
// The weights of a segment change during a run (steps, rollbacks,
// promotion), and satisfaction drifts (weekday and weekend, a campaign, an
// outage). Pooled over the run, a comparison then weighs the variant
// towards later periods and the control towards earlier ones, so a drift
// both arms share looks like a difference (Simpson's paradox). The engine
// therefore compares the arms within each allocation epoch (a period with
// constant weights, where both arms sample the same moments in the same
// proportions) and sums the epochs' evidence with information weights. The
// combination is a martingale in information time under the null, so the
// always-valid guarantee carries over. Counts without an epoch (recorded
// before a run had epochs) read as one epoch numbered 0.
//
// # Recent evidence
//
// Evidence accumulates: after 20,000 good answers, a variant that turns bad
// needs many more to drag the whole-run comparison below the margin. So the
// rollback claim is also tested on windows: a window opens every
// WindowSpacing effective responses of the comparison and judges only the
// responses after it (stratified by epoch too); the newest MaxWindows are
// kept. Window k spends RecentShare·alpha_rollback/(k(k+1)) of the budget,
// so all windows of a run, however many, spend at most RecentShare of it.
// Whether a window opens depends on counts only, never on scores.
//
// # Sample-ratio mismatch
//
// SampleRatio compares the responses per arm with the shares the weights
// predict, per epoch, with the sequential multinomial test of Lindon &
// Malek (srm.go): exact, anytime-valid, at SampleRatioAlpha per experiment.
//
// # Guarantee
//
// With budgets from Config.Confidence (see Budgets):
//
//   - Advance (family-wise over the experiment): the chance that any variant
//     truly more than MaxDrop below its control (or below Minimum) in any
//     segment is ever called NonInferior is at most 1-Confidence.
//   - Rollback (per segment): in each segment, the chance that any variant
//     within the margin is ever called Inferior, by the whole-run test or
//     any recent window, is at most 1-Confidence.
//
// Both hold however often and for however long the evidence is judged, and
// whether or not anyone acts on a verdict, as long as the Config stays the
// same for the run. They are asymptotic (the variances are estimated), which
// is why MinResponses (100 by default) is required before any verdict; the
// simulations (simulation_test.go, test/bench/stats) check them at the
// margin, with small arms near the top of the scale, with drift while the
// weights ramp, across many segments and variants, and over long runs.
//
// # Planning
//
// PlanComparison simulates the whole-run test on the normal approximation
// (seeded, deterministic) to tell when a given drop is expected to be called
// at given weights, next to the classical fixed-horizon sample.
package analysis
