//go:build bench

// Package stats is the proof suite of Rapport's decision engine
// (internal/analysis): seeded simulations of whole runs, response by
// response (internal/rolloutsim), that measure every error rate and every
// speed issue 12 sets a bound on, and compare the engine with the
// static-threshold rules users of Argo Rollouts or Flagger write for a
// canary, on the same answers. It writes docs/benchmarks/statistics.md.
//
// Every file carries the build tag "bench", so `go test ./...` neither
// compiles nor runs it. `make bench` runs it; alone:
//
//	BENCH_OUT=docs/benchmarks/statistics.md go test -tags bench ./test/bench/stats/ -run TestStatistics -v -timeout 300m
//
// Environment: BENCH_OUT (write the Markdown report there; a relative path
// is taken from the module root; every section must have run), BENCH_RUNS
// (runs per case, default 2000; e.g. 100 while developing), BENCH_SEED
// (default 20261201). Each section is a subtest (-run
// 'TestStatistics/Margin'); every table is printed to stdout as its section
// ends. The cost of one look:
//
//	go test -tags bench ./test/bench/stats/ -run '^$' -bench Decision -benchmem
//
// # What is simulated
//
// Looks every 10 responses of a segment, confidence 95%, MinResponses 100.
// Customers are assigned to arms by the current weights and answer by their
// arm's true distribution at that moment (which may drift); the engine
// judges every look with analysis.Engine.Verdicts, the same decision as
// Evaluate without the intervals, and the simulator opens epochs and
// windows as the controller does. Static-threshold rules judge the same
// answers through rolloutsim's Observe hook. A case's seed is derived from
// the suite's seed and the case's name; run i of a case has its own PCG
// streams, so the figures depend on the seed and the number of runs only,
// not on how runs are spread over goroutines (each case replays its first
// runs alone and fails if they differ).
//
// # What fails the test
//
// Every bound of issue 12, checked on the observed rates and medians (each
// rate is printed with its 95% Clopper-Pearson interval): every false
// rollback and false advance rate at most 5% (advance family-wise over
// segments × variants, rollbacks per segment), an 8-point drop rolled back in
// at least 99% of runs and, at balanced arms, after a median of at most 900
// responses per arm, a late drop rolled back within 4× the responses the
// same drop needs from the start, the sample-ratio guard's false alarms at
// most 1% and its detection of a 30% deficit at least 95%, the planner
// within 10% of the simulated medians. Also: an engine error, or a run that
// is not reproducible. The report is written before the test fails, with
// every miss marked.
package stats
