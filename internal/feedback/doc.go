// Package feedback turns survey tools' webhooks into satisfaction
// responses: it checks each provider's signature scheme on the raw body,
// and maps the payload to one response with CEL expressions (the
// provider's default mapping, overridden field by field by the
// FeedbackSource's spec.mapping).
//
// It is pure: no Kubernetes client, no network. The collector reads the
// Secret and the FeedbackSource, fetches what a provider leaves out of its
// webhook (SurveyMonkey's answers), validates the mapped response against
// the experiment and commits it. The controller uses Compile and
// RequiredKeys to report a FeedbackSource's readiness.
package feedback
