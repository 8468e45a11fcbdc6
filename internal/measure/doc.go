// Package measure reads satisfaction responses for an experiment from a
// source (the built-in collector, or Prometheus) and returns them as tallies:
// counts of responses per segment, variant and score.
//
// It owns the Source contract and the tally shape. It does not judge the
// numbers (that is package analysis) nor decide what to do with a verdict
// (package rollout). Implementations live in sub-packages: collector reads
// the ResponseTally objects the feedback collector commits, prometheus runs
// the PromQL of a SatisfactionMetric.
package measure
