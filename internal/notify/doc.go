// Package notify tells people what Rapport did, with the evidence: a variant
// rolled back in a segment, an experiment waiting for a manual promotion,
// promoted, stalled, or showing a sample-ratio mismatch. It delivers to Slack,
// Microsoft Teams (Office 365 connectors and Workflows) and generic webhooks
// (Rapport's JSON Document, optionally HMAC-signed), configured like Argo's
// notifications with a ConfigMap (rapport-notifications-cm) and a Secret
// (rapport-notifications-secret) in the manager's namespace and, for one
// namespace's experiments, in that namespace; subscriptions are annotations
// on an experiment (notifications.rapport.dev/subscribe.<trigger>.<service>)
// or label-selected entries of a ConfigMap.
//
// # What it owns, and what it must not do
//
// Events derives the events from what an experiment's status records
// (status.rollbacks entries, the phase, conditions): a pure function with
// stable IDs, so an event is only ever sent after the status holding it was
// written. The Notifier is its own controller, on the leader only: it reads
// experiments and never writes them, so it never races the experiment
// controller's optimistic-locked status patches, and a channel that is slow
// or down (each attempt is bounded by a timeout) delays notifications, never
// a rollback.
//
// Parsing the configuration, templating and the Slack and Teams (connector)
// clients are github.com/argoproj/notifications-engine's (slack-go behind
// it). Webhook and Teams Workflows requests are sent here: the engine's
// webhook service logs full URLs, which carry credentials for Teams
// Workflows, takes no context and cannot sign.
//
// # Delivery
//
// At least once. Each (event, destination) is a delivery, kept in a
// ConfigMap per experiment ("<name>-notifications", owned by the experiment
// so that it goes with it) and written after each successful delivery: a
// restart or a new leader repeats at most the delivery that was in flight.
// Failed attempts are retried with exponential backoff (2s doubling to 5m)
// until the event is MaxAge old, then given up with a Warning event; events
// already older than MaxAge when first seen are not sent. Every attempt
// failed or given up is counted (rapport_notifications_failed_total,
// rapport_notifications_dropped_total). Receivers deduplicate on the event ID
// (X-Rapport-Event, Document.ID).
package notify
