package controller

import (
	"fmt"
	"time"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/rollout"
	"github.com/rapport-dev/rapport/internal/routing"
)

// outcome is the result of one part of the work, for its condition.
// evaluated is false when the part did not run this reconcile (its
// condition then keeps its previous value).
type outcome struct {
	evaluated bool
	ok        bool
	reason    string
	message   string
}

func sprintf(format string, args ...any) string {
	if len(args) == 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
}

func succeeded(reason, format string, args ...any) outcome {
	return outcome{evaluated: true, ok: true, reason: reason, message: sprintf(format, args...)}
}

func failed(reason, format string, args ...any) outcome {
	return outcome{evaluated: true, reason: reason, message: sprintf(format, args...)}
}

// scope carries what one reconcile read and decided, from phase to phase.
type scope struct {
	// exp is the experiment being reconciled; its status is patched at the end.
	exp *cxv1.CXExperiment
	// orig is the base of the status patch: exp as read, then as last written.
	orig *cxv1.CXExperiment
	// before is the status as read, for announcing transitions.
	before cxv1.CXExperimentStatus
	// events are extra events (beyond rollout's) to announce after the status write.
	events []rollout.Event
	// now is the reconcile's time (one clock reading for all decisions).
	now time.Time

	// settings is spec.satisfaction parsed.
	settings cxv1.SatisfactionSettings
	// parent is the experiment's HTTPRoute (Gateway API), read once per
	// reconcile; nil when it is missing.
	parent *gwv1.HTTPRoute
	// router applies traffic for the experiment's traffic mode.
	router routing.Router
	// segments are the experiment's CustomerSegments by name.
	segments map[string]*cxv1.CustomerSegment
	// metric is the SatisfactionMetric of spec.satisfaction.source.metricRef.
	metric *cxv1.SatisfactionMetric

	// judgements and breaches are the measurement's verdicts for rollout.
	judgements rollout.Judgements
	breaches   map[string]map[string]string
	// mismatches are the segments held by a sample-ratio mismatch.
	mismatches map[string]string
	// lastResponseAt is the commit time of the newest counted response.
	lastResponseAt time.Time

	// decision is rollout's output.
	decision rollout.Output

	// Outcomes for the domain conditions.
	refs, measured, routed outcome
	// keepTraffic leaves traffic as it is this reconcile: an object the
	// split needs is missing (sc.routed says which).
	keepTraffic bool
	// routeErr is returned once events are recorded, so the reconcile is retried.
	routeErr error
	// fenceErr is a raise of the tally's fence that failed after the
	// reconcile's status write: the reconcile is retried for it, after the
	// transition is announced (see cxexperiment_fence.go).
	fenceErr error
	// skipStatus is set when the write-ahead of a traffic change failed:
	// the reconcile ends without another status write or announcement.
	skipStatus bool
}

func newScope(exp *cxv1.CXExperiment, now time.Time) *scope {
	return &scope{exp: exp, orig: exp.DeepCopy(), before: *exp.Status.DeepCopy(), now: now}
}

// loadSettings parses the settings the run is judged by (status.settings,
// else spec.satisfaction).
func (sc *scope) loadSettings() error {
	if sc.running() && sc.exp.Status.Settings == nil {
		// A run started by a version without status.settings: from now on
		// it is judged by the settings it has today.
		if rs, err := sc.exp.Spec.Satisfaction.RunSettings(); err == nil {
			sc.exp.Status.Settings = &rs
		}
	}
	s, err := sc.exp.JudgedSettings()
	if err != nil {
		return err
	}
	sc.settings = s
	return nil
}

func (sc *scope) running() bool {
	p := sc.exp.Status.Phase
	return p == cxv1.PhaseProgressing || p == cxv1.PhasePaused
}
