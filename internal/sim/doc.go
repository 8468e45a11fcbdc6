// Package sim is Rapport's customer simulator: the load generator of the
// demo and the benchmarks.
//
// It reads the live traffic split from the cluster (the HTTPRoute weights
// Rapport wrote, or Deployment replica counts), generates customers per
// segment at a given rate, assigns each to a variant by those weights, draws
// a satisfaction score from the scenario's distribution for that variant and
// segment (which may change after N responses, to play a regression), and
// posts the answers to the feedback collector in batches, like an app or a
// survey tool would.
//
// Scenario and drawing are pure and seeded (scenario.go, draw.go); the
// runner does the I/O (run.go).
package sim
