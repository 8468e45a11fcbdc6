// Package rollout is the step state machine of an experiment: given the
// spec, the status, the verdicts of the decision engine and the manual
// actions asked for, Decide returns the next status, the events to emit and
// when to look again.
//
// It is pure: no clients, no clock of its own (the caller passes now), no
// goroutines. Everything a restart needs is in the status it returns, so the
// controller is level-triggered: the same inputs give the same decision.
// Traffic weights are a function of that status (DesiredWeights); package
// routing applies them.
//
// It also judges guardrail values (Breached), beside the verdicts of the
// decision engine: a reader only fetches the value.
//
// Safety rules it owns:
//   - an Inferior verdict or a guardrail breach rolls the variant back in
//     that segment at once, even while paused;
//   - a step advances only when every active variant is NonInferior in every
//     segment and the step's minDuration has passed;
//   - an undecided variant is never promoted automatically.
package rollout
