package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// action is one manual action on an experiment.
type action struct {
	name, short, long, example string
	// refuse says why the action is pointless for exp ("" when it is not).
	refuse func(exp *cxv1.CXExperiment) string
	// noop says why there is nothing to do ("" when there is), e.g. pause of
	// a paused experiment: exit code 0, nothing written.
	noop func(exp *cxv1.CXExperiment) string
	// annotation is the action's annotation; empty for pause and resume.
	annotation string
	// paused is the spec.paused value pause and resume write.
	paused bool
	// done is printed after the patch; token is "" for pause and resume.
	done func(exp *cxv1.CXExperiment, token string) string
}

func ref(exp *cxv1.CXExperiment) string { return exp.Namespace + "/" + exp.Name }

func phase(exp *cxv1.CXExperiment) cxv1.ExperimentPhase { return cxv1.ExperimentPhase(phaseOf(exp)) }

func step(exp *cxv1.CXExperiment) string {
	return fmt.Sprintf("step %d/%d", exp.Status.CurrentStep, len(exp.Spec.Steps))
}

func refuseEnded(verb string) func(*cxv1.CXExperiment) string {
	return func(exp *cxv1.CXExperiment) string {
		if phase(exp).Terminal() {
			return fmt.Sprintf("it has ended (%s): there is nothing running to %s", phase(exp), verb)
		}
		return ""
	}
}

var actions = []action{
	{
		name:  "pause",
		short: "Hold an experiment at its current step (spec.paused: true)",
		long: `Set spec.paused to true. The controller holds the current step with its
weights; the step clock stops (time paused does not count towards minDuration
or maxDuration). Rollbacks on inferior evidence still happen while paused.

Refused (exit code 1) when the experiment has ended, unless --force. Pausing a
paused experiment does nothing (exit code 0).`,
		example: `  kubectl cx pause checkout-redesign -n shop`,
		refuse:  refuseEnded("pause"),
		noop: func(exp *cxv1.CXExperiment) string {
			if exp.Spec.Paused {
				return fmt.Sprintf("%s is already paused (spec.paused: true); nothing to do", ref(exp))
			}
			return ""
		},
		paused: true,
		done: func(exp *cxv1.CXExperiment, _ string) string {
			return fmt.Sprintf("paused %s (spec.paused: true); the controller holds %s at its next reconcile (rollbacks on evidence still apply)", ref(exp), step(exp))
		},
	},
	{
		name:  "resume",
		short: "Resume a paused experiment (spec.paused: false)",
		long: `Set spec.paused to false. The step clock starts again where it stopped.

Refused (exit code 1) when the experiment has ended, unless --force. Resuming
an experiment that is not paused does nothing (exit code 0).`,
		example: `  kubectl cx resume checkout-redesign -n shop`,
		refuse:  refuseEnded("resume"),
		noop: func(exp *cxv1.CXExperiment) string {
			if !exp.Spec.Paused {
				return fmt.Sprintf("%s is not paused (spec.paused: false); nothing to do", ref(exp))
			}
			return ""
		},
		paused: false,
		done: func(exp *cxv1.CXExperiment, _ string) string {
			return fmt.Sprintf("resumed %s (spec.paused: false); the controller resumes %s at its next reconcile", ref(exp), step(exp))
		},
	},
	{
		name:  "promote",
		short: "Promote now: each segment gets its best variant",
		long: `Request a promotion with the annotation ` + cxv1.AnnotationPromote + `=<token>.
At the last step of a Manual-promotion experiment it promotes; in a running
experiment it skips the remaining steps. In each segment the controller
promotes the active variant with the best verdict (NonInferior before
Inconclusive), then the best score; it never promotes a rolled-back or
Inferior variant. A paused experiment is promoted once it is resumed.

Refused (exit code 1) when the experiment has not started (Pending) or has
ended (Succeeded, RolledBack, Failed), unless --force.`,
		example:    `  kubectl cx promote checkout-redesign -n shop`,
		annotation: cxv1.AnnotationPromote,
		refuse: func(exp *cxv1.CXExperiment) string {
			switch p := phase(exp); p {
			case cxv1.PhasePending:
				return "it has not started yet (Pending): promote applies to a running experiment"
			case cxv1.PhaseSucceeded:
				return "it is already promoted (Succeeded)"
			case cxv1.PhaseRolledBack, cxv1.PhaseFailed:
				return fmt.Sprintf("it has ended (%s) and the controller would ignore the promote; 'kubectl cx retry %s' starts a new run", p, exp.Name)
			}
			return ""
		},
		done: func(exp *cxv1.CXExperiment, token string) string {
			msg := fmt.Sprintf("promote requested for %s (token %s); the controller acts on it at its next reconcile", ref(exp), token)
			if phase(exp) == cxv1.PhasePaused {
				msg += "\nnote: the experiment is paused; the promotion is carried out once it is resumed ('kubectl cx resume " + exp.Name + "')"
			}
			return msg
		},
	},
	{
		name:  "abort",
		short: "Roll every variant back now; all traffic goes to the control",
		long: `Request an abort with the annotation ` + cxv1.AnnotationAbort + `=<token>. The
controller rolls every active variant back in every segment (reason Aborted)
and the experiment ends RolledBack. 'kubectl cx retry' starts a new run later.

Refused (exit code 1) when the experiment has ended, unless --force.`,
		example:    `  kubectl cx abort checkout-redesign -n shop`,
		annotation: cxv1.AnnotationAbort,
		refuse:     refuseEnded("abort"),
		done: func(exp *cxv1.CXExperiment, token string) string {
			return fmt.Sprintf("abort requested for %s (token %s); the controller acts on it at its next reconcile", ref(exp), token)
		},
	},
	{
		name:  "retry",
		short: "Start a new run of a RolledBack or Failed experiment",
		long: `Request a retry with the annotation ` + cxv1.AnnotationRetry + `=<token>. The
controller starts run N+1 from step 1 with fresh responses.

Refused (exit code 1) unless the experiment is RolledBack or Failed, unless
--force.`,
		example:    `  kubectl cx retry checkout-redesign -n shop`,
		annotation: cxv1.AnnotationRetry,
		refuse: func(exp *cxv1.CXExperiment) string {
			if p := phase(exp); p != cxv1.PhaseRolledBack && p != cxv1.PhaseFailed {
				return fmt.Sprintf("it is %s: only a RolledBack or Failed experiment can be retried", p)
			}
			return ""
		},
		done: func(exp *cxv1.CXExperiment, token string) string {
			return fmt.Sprintf("retry requested for %s (token %s); the controller starts run %d at its next reconcile", ref(exp), token, max(exp.Status.Run, 1)+1)
		},
	},
}

func newActionCommand(o *Options, a action) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:               a.name + " NAME",
		Short:             a.short,
		Long:              a.long,
		Example:           a.example,
		Args:              oneName,
		ValidArgsFunction: o.completeExperiments,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := o.clientInNamespace()
			if err != nil {
				return err
			}
			return o.runAction(cmd.Context(), c, a, ns, args[0], force)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "act even when the phase makes the action pointless")
	return cmd
}

// newToken returns an RFC 3339 timestamp with nanoseconds that differs from
// the previous token.
func newToken(now time.Time, previous string) string {
	t := now.UTC()
	tok := t.Format(time.RFC3339Nano)
	for tok == previous {
		t = t.Add(time.Nanosecond)
		tok = t.Format(time.RFC3339Nano)
	}
	return tok
}

// runAction applies the action and prints its answer: the note (a warning
// of --force, a replaced request) on stderr, what was done on stdout.
func (o *Options) runAction(ctx context.Context, c client.Client, a action, ns, name string, force bool) error {
	ans, err := applyAction(ctx, c, a, ns, name, force, o.Now)
	if err != nil {
		return err
	}
	if ans.note != "" {
		o.stderrf("%s\n", ans.note)
	}
	_, err = fmt.Fprintln(o.Out, ans.message)
	return err
}

// actionAnswer is what an applied action says: message is what was done (or
// why nothing was needed), note a warning or remark to show beside it.
type actionAnswer struct {
	message, note string
}

// applyAction checks the phase, then writes the merge patch. The patch
// carries the resourceVersion that was checked, so a phase change in between
// makes it fail with a conflict, and the check runs again. kubectl cx
// pause/... and the dashboard's buttons both act through it.
func applyAction(ctx context.Context, c client.Client, a action, ns, name string, force bool, now func() time.Time) (actionAnswer, error) {
	var exp *cxv1.CXExperiment
	var token, note, noop string
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var err error
		if exp, err = getExperiment(ctx, c, ns, name); err != nil {
			return err
		}
		note, noop = "", ""
		if why := a.refuse(exp); why != "" {
			if !force {
				return refusedErrorf("refusing to %s %s: %s (use --force to %s anyway)", a.name, ref(exp), why, a.name)
			}
			note = fmt.Sprintf("warning: %s (--force given)", why)
		}
		if a.noop != nil {
			if noop = a.noop(exp); noop != "" {
				return nil
			}
		}
		metadata := map[string]any{"resourceVersion": exp.ResourceVersion}
		patch := map[string]any{"metadata": metadata}
		if a.annotation == "" {
			patch["spec"] = map[string]any{"paused": a.paused}
		} else {
			prev := exp.Annotations[a.annotation]
			token = newToken(now(), prev)
			metadata["annotations"] = map[string]any{a.annotation: token}
			if prev != "" && prev != handledToken(exp, a.annotation) {
				note = joinNotes(note, fmt.Sprintf("note: the previous %s request (token %s) has not been handled yet; this one replaces it", a.name, prev))
			}
		}
		body, err := json.Marshal(patch)
		if err != nil {
			return err
		}
		return c.Patch(ctx, exp, client.RawPatch(types.MergePatchType, body))
	})
	if err != nil {
		return actionAnswer{}, experimentError(err, ns, name)
	}
	if noop != "" {
		return actionAnswer{message: noop, note: note}, nil
	}
	return actionAnswer{message: a.done(exp, token), note: note}, nil
}

func joinNotes(a, b string) string {
	if a == "" {
		return b
	}
	return a + "\n" + b
}

// handledToken is the token the controller last handled for an annotation.
func handledToken(exp *cxv1.CXExperiment, annotation string) string {
	h := exp.Status.HandledActions
	switch annotation {
	case cxv1.AnnotationPromote:
		return h.Promote
	case cxv1.AnnotationAbort:
		return h.Abort
	case cxv1.AnnotationRetry:
		return h.Retry
	}
	return ""
}
