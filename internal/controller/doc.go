// Package controller holds Rapport's reconcilers. They are thin: they read
// what the cluster holds, call the pure packages (analysis for verdicts,
// rollout for the next step, routing to render and apply traffic), record
// events and metrics, and write status once per reconcile.
//
// Data flows one way: reconcile -> measure -> decide -> plan -> render ->
// apply -> status; docs/development.md names the file that owns each step.
package controller
