// Package collector is Rapport's built-in feedback collector: an HTTP API on
// every manager replica that takes batches of satisfaction responses for a
// CXExperiment and commits their counts into the experiment's ResponseTally.
//
//	POST /v1/namespaces/{namespace}/experiments/{name}/responses
//	Authorization: Bearer <token>
//	Idempotency-Key: <optional, 1..128 printable ASCII>
//	Content-Type: application/json | application/x-ndjson
//	{"responses":[{"variant":"one-page","segment":"enterprise","score":4}]}
//	-> 202 {"accepted":1,"duplicates":0}
//
// Errors are JSON {"error": "..."} naming the field and the fix: 400 invalid
// batch (nothing counted), 401 unknown token, 403 token of another namespace,
// 404 unknown experiment, 409 experiment not Progressing or Paused (or not
// using the collector), 413 body or batch too large, 415 content type, 429
// rate limit per token (Retry-After), 503 the commit failed or the
// experiment's queue is full (retry with the same Idempotency-Key).
// GET /healthz answers 200.
//
// The customer-satisfaction gate (verdict.go, gates.go; docs/integrations.md)
// reads experiments' status, never writes: GET .../experiments/{name}/verdict
// returns the verdicts as numbers and a decision (Promote, Wait, Rollback) for
// Argo Rollouts' Web metric provider; POST .../flagger/{confirm-promotion,
// rollback} answers Flagger's webhooks (200 yes, 409 no). They take tokens
// whose Secret allows "verdicts" (AnnotationTokenScopes); the feedback API
// takes those that allow "responses".
//
// Answers also arrive one at a time, without a token (see
// docs/measurement.md):
//
//	GET  /v1/survey.js                                           the survey intercept (survey.go)
//	GET  /v1/public/namespaces/{namespace}/experiments/{name}            its settings
//	POST /v1/public/namespaces/{namespace}/experiments/{name}/responses  a browser's answer,
//	     with the signed assignment cookie's value, from an allowed origin (public.go)
//	POST /v1/namespaces/{namespace}/sources/{name}/webhook       a survey tool's webhook,
//	     signed, mapped by its FeedbackSource (webhook.go)
//
// Both verify before they count, commit one response with its
// deduplication key (respondent or event id) through the same group
// commit, answer only after it, and count refusals in
// rapport_feedback_rejections_total by source and reason.
//
// # What it owns, and what it must not do
//
// (The browser and webhook paths add: verifying assignments with the
// experiment's key (package assignment), the providers' signatures and CEL
// mappings (package feedback), the public endpoint's per-client rate
// limits, and the FeedbackSources' status.lastAcceptedAt and lastError.)
//
// It owns decoding and validation (Decode: pure, no I/O), token checks
// against Secrets labelled cx.rapport.dev/feedback-token=true, per-token rate
// limits, and the ResponseTally objects (it creates and writes them). It
// never stores raw answers: respondent, channel and at are validated and
// dropped, and only counts per segment, variant and score are kept. It never
// judges the numbers or changes an experiment: the controller owns
// ResponseTally objects, so every commit wakes the experiment's reconcile
// through its watch; the collector needs to do nothing else for that.
// Package measure/collector reads the tallies back.
//
// # Durability
//
// A 202 is sent only after the API server accepted the write holding the
// batch's counts, so an accepted batch survives a restart of any replica.
// Counts belong to one run: when status.run moves on, the tally restarts at
// zero (counts and keys) at its next commit.
//
// # Idempotency
//
// A batch with an Idempotency-Key stores the key's digest (KeyDigest: scoped
// by namespace, experiment and run; 8 bytes) in spec.recentKeyDigests in
// the same write as its counts. A retry with the same key, on any replica and after any
// restart, answers 202 with duplicates set and counts nothing, provided fewer
// than MaxRecentKeys (1024) newer keyed batches were committed for the
// experiment since. Requests with the same key in one group count once. The
// key identifies the batch: a different body under a used key is not
// counted. Without a key, a retry after a lost 202 (or a 503 whose write did
// land, e.g. a timeout) may count twice. A batch whose client hangs up after
// the collector read it is still committed; the retry learns so. That holds
// after the experiment ended too: a retry whose key the tally holds gets 202
// with duplicates, where any other batch gets 409.
//
// # Group commit and API load
//
// Each experiment has at most one tally write in flight per replica. The
// request that finds no write in flight writes; requests arriving meanwhile
// join the next group, whose first request writes it once the current write
// ends, for everyone in it (leader/follower under one mutex; no goroutine
// or queue per experiment outlives its writes, and waiting responses are
// capped per experiment, past which requests get 503). Every request of a
// group is answered after that group's write. A write is a read-modify-write
// guarded by resourceVersion: on a conflict (another replica, or a stale
// cache) it re-reads from the API server and retries, so replicas never lose
// or double counts. Replicas that both commit answers of one busy experiment
// take turns instead of colliding: after a conflict, a replica's next writes
// wait (up to about one commit, turnWait) for the other replica's next
// write to reach its cache and start from it; when no other write comes,
// it stops waiting. At most DefaultWriteSlots writes run at once per replica,
// so the load on the API server is bounded by replicas x slots, whatever
// the request rate; under load, a write commits many requests.
//
// # Bounded state
//
// Metric labels carry only validated values of existing experiments (never
// respondents or unknown names), rate limiters live in a bounded LRU keyed
// by token digest, and commit queues exist only while a write is in flight.
package collector
