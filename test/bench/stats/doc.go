//go:build bench

// Package stats is the statistical-efficiency benchmark of Rapport's decision
// engine (internal/analysis): how often and how fast it rolls back a variant
// that customers like less than the control, how often it rolls back one they
// like as much, and how that compares with the static-threshold rule users of
// Argo Rollouts or Flagger write for a canary, on the same simulated streams.
//
// Every file carries the build tag "bench", so `go test ./...` neither
// compiles nor runs it. Run it with
//
//	go test -tags bench ./test/bench/stats/ -run TestEfficiency -v -timeout 30m
//
// and, to refresh the published tables,
//
//	BENCH_OUT=docs/benchmarks/statistics.md go test -tags bench ./test/bench/stats/ -run TestEfficiency -v -timeout 30m
//
// The cost of one decision (one always-valid look vs one threshold check) is
//
//	go test -tags bench ./test/bench/stats/ -run '^$' -bench Decision -benchmem
//
// Environment: BENCH_OUT (write the Markdown report there; a relative path is
// taken from the module root, not the package directory), BENCH_RUNS (runs
// per case, default 2000; use e.g. 200 while developing), BENCH_SEED (default
// 20260801). The figures depend only on the seed and the number of runs: every
// run has its own PCG streams, runs are spread over goroutines but each result
// is stored by run index, and the report contains no timings.
//
// # Simulation
//
// One run is one experiment with a control and one variant. Both arms grow by
// 10 responses between looks, up to 20,000 responses per arm. Responses are
// independent draws from each arm's true distribution, which may change over
// the run (the drift case). Run i draws the control from PCG(seed, 2i) and the
// variant from PCG(seed, 2i+1) in every case, so all rules in a case judge the
// same streams and cases differ only in the true distributions (common random
// numbers). Only the share of satisfied responses matters for CSAT (and the
// promoter/passive/detractor split for NPS), so CSAT responses are tallied as
// 1s and 5s and NPS ones as 0s, 7s and 10s; the estimates do not depend on the
// spread within a class.
//
// # Rules compared
//
// Rapport: the engine's verdict at every look from MinResponses on. Two
// readings are reported. "Stops at the first verdict" ends a run at its first
// Inferior (roll back) or NonInferior (cleared, promotion allowed), as a
// canary step does. "Never stops" keeps judging until 20,000 per arm and
// records the first Inferior: the strictest measure of false alarms, and the
// one comparable to a threshold rule that runs for the whole canary. Each
// look is decided from analysis.EstimateArm and analysis.HalfWidth exactly as
// analysis.Evaluate decides it (Evaluate also builds an explanation string,
// which would dominate the run time); Evaluate itself is called on the first
// look, every 64th look, every look that sets an outcome and every look within
// 1e-9 of the margin, and any disagreement fails the test.
//
// Static threshold (the Argo Rollouts / Flagger canary rule): every 100
// variant responses (one analysis interval, "a minute of traffic") the
// variant's score over its last W responses (W = 100 or 500; all responses so
// far while fewer than W exist) is compared with a constant threshold, the
// control's expected score minus MaxDrop (CSAT 82, NPS 30). A check fails
// when the score is strictly below it. The rule rolls back at the first
// failed check (limit 1: Argo failureLimit 0, Flagger threshold 1), or at the
// 5th failed check, counted either consecutively (a passing check resets the
// count, the lenient reading) or in total over the run (how Argo's
// failureLimit 4 and Flagger's threshold 5 actually count). It never looks at
// the control: those tools compare a query result with a constant.
//
// # What fails the test
//
// Never a figure: benchmarks report, they do not gate. Broken invariants fail
// it: an error or a non-finite number from the engine, a verdict that
// disagrees with analysis.Evaluate, a verdict before MinResponses, outcomes
// that do not add up to the number of runs, a stopping point off the look
// grid, rules whose stopping points contradict each other (a limit of 5 can
// never fire before a limit of 1 on the same stream), quantiles out of order,
// or a run that gives a different result when repeated.
package stats
