package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Feedback sources besides the token-authenticated batch API: the source
// label is "feedbacksource/<name>" for a FeedbackSource's webhook,
// "browser/<experiment>" for the public endpoint, and "unknown" when the
// request names no existing object (so that made-up names never become
// labels).
var (
	// FeedbackRejections counts every answer a webhook or a browser sent
	// that was not counted, by source and reason, so an operator sees a
	// broken mapping or a forged cookie at once.
	FeedbackRejections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rapport_feedback_rejections_total",
		Help: "Webhook and browser answers refused by the feedback collector, by source and reason.",
	}, []string{"namespace", "source", "reason"})

	// FeedbackIgnored counts webhook events acknowledged without counting
	// (partial responses, updates, other event types), by source.
	FeedbackIgnored = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rapport_feedback_ignored_total",
		Help: "Webhook events acknowledged without counting them (spec.mapping.accept was false), by source.",
	}, []string{"namespace", "source"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(FeedbackRejections, FeedbackIgnored)
}

// ForgetFeedbackSource removes the series of a deleted FeedbackSource.
func ForgetFeedbackSource(namespace, name string) {
	labels := prometheus.Labels{"namespace": namespace, "source": "feedbacksource/" + name}
	FeedbackRejections.DeletePartialMatch(labels)
	FeedbackIgnored.DeletePartialMatch(labels)
}
