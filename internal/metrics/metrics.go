package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	// FeedbackResponses counts every response the collector accepted, so
	// Prometheus sees the same data the decision engine judges.
	FeedbackResponses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rapport_feedback_responses_total",
		Help: "Satisfaction responses accepted by the feedback collector.",
	}, []string{"namespace", "experiment", "variant", "segment", "score"})

	// CollectorRequests counts collector HTTP requests by response code.
	CollectorRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rapport_collector_requests_total",
		Help: "Feedback collector HTTP requests by status code.",
	}, []string{"code"})

	// CollectorCommitDuration times the durable commit of a group of batches.
	CollectorCommitDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "rapport_collector_commit_duration_seconds",
		Help:    "Time to commit a group of feedback batches to the Kubernetes API.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})

	// CollectorCommitBatches counts the batches (requests) per commit.
	CollectorCommitBatches = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "rapport_collector_commit_batches",
		Help:    "Number of feedback requests committed together in one API write.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10),
	})

	// CollectorCommitConflicts counts tally writes refused because another
	// writer (another replica) changed the tally first; each is re-read and
	// retried.
	CollectorCommitConflicts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rapport_collector_commit_conflicts_total",
		Help: "Tally writes of the feedback collector that lost to another writer and were retried.",
	})

	// CollectorCommitExperimentReads counts where tally writes read their
	// experiment: from the manager's cache when the tally's fence allows
	// it, else from the API server (one GET per write).
	CollectorCommitExperimentReads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rapport_collector_commit_experiment_reads_total",
		Help: "Experiment reads of the feedback collector's tally writes, by where they read it (cache: the tally's fence allowed the cached copy; api-server: it did not).",
	}, []string{"from"})
)

// Values of CollectorCommitExperimentReads' label "from".
const (
	FromCache     = "cache"
	FromAPIServer = "api-server"
)

func init() {
	ctrlmetrics.Registry.MustRegister(FeedbackResponses, CollectorRequests, CollectorCommitDuration, CollectorCommitBatches, CollectorCommitConflicts, CollectorCommitExperimentReads)
}

// ForgetExperiment removes the series of a deleted experiment.
func ForgetExperiment(namespace, name string) {
	labels := prometheus.Labels{"namespace": namespace, "experiment": name}
	FeedbackResponses.DeletePartialMatch(labels)
	FeedbackRejections.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "source": "browser/" + name})
	for _, v := range perExperiment {
		v.DeletePartialMatch(labels)
	}
}
