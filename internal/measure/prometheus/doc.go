// Package prometheus reads satisfaction responses and guardrail values from a
// Prometheus-compatible HTTP API.
//
// It owns two readers and the query templating they share:
//
//   - Source implements measure.Source for a SatisfactionMetric: for every
//     segment and variant of an experiment it renders the metric's query and
//     runs it as an instant query. The result must be an instant vector with
//     one sample per score, labelled "score" with an integer of the scale
//     (ScoreMin..ScoreMax), whose value is the number of responses with that
//     score; scores without a sample count zero.
//   - Guardrails implements measure.GuardrailReader: it renders a guardrail's
//     query and expects a scalar or a vector of exactly one sample. Breached
//     compares a value with the guardrail's max/min and returns one line of
//     evidence, e.g. "error-rate 0.034 > max 0.01".
//
// It does not judge satisfaction (package analysis) nor act on a breach
// (package rollout), and it does not read Secrets: the controller reads the
// bearerTokenSecretRef and passes the token in.
//
// # Missing data is never satisfaction
//
// A query that returns an empty vector means Prometheus holds no responses
// for that variant and segment. Source lists the pair in Result.Missing and
// Guardrails.Value returns an error wrapping measure.ErrNoData (so does a
// guardrail value of NaN, e.g. a ratio without traffic). The decision engine
// turns that into InsufficientData: absence of data is never read as a
// satisfied (or a healthy) variant. Every other surprise (an unreachable
// server, an HTTP error, a result of the wrong shape, a sample without a
// valid score, a negative count, the same score twice) is an error naming
// the address, variant and segment; Source fails the whole read on the first
// one rather than return partial tallies.
//
// # Templates
//
// Queries are text/template templates with missingkey=error and the fields
// {{ .Variant }}, {{ .Segment }} ("all" for an experiment without segments),
// {{ .Namespace }}, {{ .Experiment }} and {{ .Window }}: the time since the
// experiment's run started as a PromQL duration in whole seconds, rounded up
// and at least 1s, e.g. 3725s. A typical satisfaction query is
//
//	sum by (score) (increase(shop_csat_responses_total{variant="{{ .Variant }}",segment="{{ .Segment }}"}[{{ .Window }}]))
//
// Values are checked, not escaped: only letters, digits, '-', '_' and '.' may
// be inserted (the CRDs already restrict names to DNS labels), so a value can
// never break out of a label matcher such as variant="{{ .Variant }}". Empty
// values are refused because variant="" matches series without the label.
// Validate checks a template early (template syntax, rendering with sample
// values, PromQL syntax) for a reconciler's Ready condition.
//
// # Rounding
//
// Counts are rounded to the nearest integer. increase() extrapolates to the
// edges of its window, so increase(x[1h]) of a counter that grew by 7 can
// return 7.4; rounding gives back the whole responses. Negative, NaN and
// infinite values are errors, as they cannot be counts. Summing the raw
// counters instead, sum by (score) (x{...}), gives exact counts, but includes
// responses from before the run started.
package prometheus
