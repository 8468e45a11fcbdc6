// Package metrics owns Rapport's own Prometheus metrics: what the operator
// and its feedback collector expose on the manager's metrics endpoint.
//
// It is telemetry only. Reading satisfaction from Prometheus is package
// measure/prometheus; the two are kept apart on purpose.
//
// Cardinality is bounded: labels carry namespace, experiment, segment,
// variant, score (at most 11 values), phase and reason — never respondents,
// free text or request paths. Series of a deleted experiment are removed by
// ForgetExperiment.
package metrics
