package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Notification metrics. Labels are the trigger (five values) and the
// service name of the notification configuration (bounded by the
// ConfigMaps), never recipients or experiments.
var (
	// NotificationsSent counts notifications a channel accepted.
	NotificationsSent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rapport_notifications_sent_total",
		Help: "Notifications a channel accepted, by trigger and service.",
	}, []string{"trigger", "service"})

	// NotificationsFailed counts failed delivery attempts; each is retried
	// with backoff until the event is older than the notifier's max age.
	NotificationsFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rapport_notifications_failed_total",
		Help: "Failed notification delivery attempts (each is retried), by trigger and service.",
	}, []string{"trigger", "service"})

	// NotificationsDropped counts notifications given up: still undelivered
	// when their event grew older than the max age.
	NotificationsDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rapport_notifications_dropped_total",
		Help: "Notifications given up undelivered after the max age, by trigger and service.",
	}, []string{"trigger", "service"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(NotificationsSent, NotificationsFailed, NotificationsDropped)
}
