package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// waitOptions tune `status --wait`.
type waitOptions struct {
	// timeout is the longest wait; 0 for none.
	timeout time.Duration
	// view redraws the status view (--watch) instead of printing lines.
	view   bool
	events int
	out    *outputFlags
}

// waitStatus follows an experiment until its run has an outcome, the
// timeout passes, or ctx ends, and maps the outcome to the exit code.
func (o *Options) waitStatus(ctx context.Context, c client.WithWatch, ns, name string, opts waitOptions) error {
	wctx := ctx
	if opts.timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, opts.timeout)
		defer cancel()
	}
	w := o.newWatcher(c, ns, name, opts.events)
	w.until = func(e *cxv1.CXExperiment) bool { return phase(e).Terminal() }
	if !opts.view {
		w.line = StatusLine
		w.lineOut = o.Out
		if opts.out.format() != "" {
			w.lineOut = o.ErrOut // stdout carries the object
		}
	}
	err := w.run(wctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = nil // the timeout, reported below
		} else {
			return err
		}
	}
	ref := ns + "/" + name
	if w.gone {
		return notFoundErrorf("cxexperiment %s was deleted while waiting for its outcome", ref)
	}
	exp := w.exp
	now := "not read yet" // the time ran out before the first read
	if exp != nil {
		now = StatusLine(exp)
	}
	if ctx.Err() != nil {
		return &exitError{code: ExitError, err: fmt.Errorf("interrupted while waiting for %s (%s)", ref, now)}
	}
	if exp == nil || !phase(exp).Terminal() {
		return &exitError{code: ExitTimeout, err: fmt.Errorf("timed out after %s waiting for %s to end (now: %s)", opts.timeout, ref, now)}
	}
	if opts.out.format() != "" {
		if err := opts.out.printExperiments(o.Out, []cxv1.CXExperiment{*exp}, true, false, o.Now()); err != nil {
			return err
		}
	}
	return outcome(exp)
}

// outcome is nil for a Succeeded run, else the error carrying the exit code
// of a RolledBack or Failed one.
func outcome(exp *cxv1.CXExperiment) error {
	ref := exp.Namespace + "/" + exp.Name
	switch phase(exp) {
	case cxv1.PhaseRolledBack:
		return &exitError{code: ExitRolledBack, err: fmt.Errorf("cxexperiment %s was rolled back: %s", ref, readyMessage(exp))}
	case cxv1.PhaseFailed:
		return &exitError{code: ExitFailed, err: fmt.Errorf("cxexperiment %s failed: %s", ref, readyMessage(exp))}
	}
	return nil
}

// StatusLine is one line saying where an experiment stands, e.g.
// "Progressing - step 2/3 (25%): step 2/3 holds for its minDuration 30m0s".
func StatusLine(exp *cxv1.CXExperiment) string {
	s := fmt.Sprintf("%s - step %d/%d", phaseOf(exp), exp.Status.CurrentStep, len(exp.Spec.Steps))
	if exp.Status.CurrentStep > 0 {
		s += fmt.Sprintf(" (%d%%)", exp.Status.StepWeight)
	}
	if m := readyMessage(exp); m != "" {
		s += ": " + m
	}
	return s
}

// readyMessage is the Ready condition's message on one line.
func readyMessage(exp *cxv1.CXExperiment) string {
	if c := meta.FindStatusCondition(exp.Status.Conditions, cxv1.ConditionReady); c != nil {
		return oneLine(c.Message)
	}
	return ""
}
