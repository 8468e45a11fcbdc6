package rollout

import (
	"fmt"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// Judgement is the decision engine's view of one variant in one segment.
type Judgement struct {
	Verdict cxv1.Verdict
	// Reason is RollbackInferior or RollbackBelowMinimum for an Inferior verdict.
	Reason cxv1.RollbackReason
	// Evidence is the one-line explanation, with the numbers.
	Evidence  string
	Responses int64
	// Score ranks non-inferior variants at promotion.
	Score float64
}

// Judgements maps segment -> variant -> Judgement. A missing entry is
// InsufficientData.
type Judgements map[string]map[string]Judgement

func (j Judgements) get(segment, variant string) Judgement {
	if v, ok := j[segment][variant]; ok {
		return v
	}
	return Judgement{Verdict: cxv1.VerdictInsufficientData, Evidence: "no measurement yet"}
}

// Actions holds the tokens of the manual-action annotations (empty when absent).
type Actions struct {
	Promote, Abort, Retry string
}

// Input is everything Decide needs.
type Input struct {
	Spec   *cxv1.CXExperimentSpec
	Status *cxv1.CXExperimentStatus
	// Judgements are the latest verdicts.
	Judgements Judgements
	// Breaches maps segment -> variant -> evidence of a guardrail breach.
	Breaches map[string]map[string]string
	// Mismatches maps a segment whose responses per variant do not match
	// its weights (a sample-ratio mismatch) to the observed and expected
	// shares. Such a segment neither advances nor is promoted automatically;
	// rollbacks still apply.
	Mismatches map[string]string
	Actions    Actions
	Now        time.Time
}

// Event is a Kubernetes Event to record.
type Event struct {
	Warning bool
	Reason  string
	Message string
}

// Output is the decision.
type Output struct {
	// Status is the next status (a copy; the input is not modified).
	Status cxv1.CXExperimentStatus
	Events []Event
	// RolledBack lists the rollbacks decided now.
	RolledBack []cxv1.Rollback
	// WaitingMessage explains Status.Waiting (why the experiment stays at
	// its step), for conditions; empty once the run has ended.
	WaitingMessage string
	// RequeueAfter is when a timer of the step expires (0: no timer).
	RequeueAfter time.Duration
}

// Event reasons.
const (
	EventStarted         = "Started"
	EventStepAdvanced    = "StepAdvanced"
	EventRolledBack      = "VariantRolledBack"
	EventAllRolledBack   = "ExperimentRolledBack"
	EventPromoted        = "Promoted"
	EventPaused          = "Paused"
	EventResumed         = "Resumed"
	EventAborted         = "Aborted"
	EventRetried         = "Retried"
	EventActionIgnored   = "ActionIgnored"
	EventAwaitPromotion  = "AwaitingPromotion"
	EventInconclusive    = "Inconclusive"
	EventContinued       = "ContinuedInconclusive"
	EventStepsChanged    = "StepsChanged"
	EventEpochsFolded    = "EpochsFolded"
	EventMismatchIgnored = "PromotedDespiteMismatch"
)

type decider struct {
	in  Input
	st  *cxv1.CXExperimentStatus
	out Output
	now metav1.Time
	// waited is why the experiment waited after the previous decision, so
	// that a repeated decision does not repeat an event.
	waited cxv1.WaitingReason
}

// Decide computes the next status of an experiment.
func Decide(in Input) Output {
	d := &decider{in: in, st: in.Status.DeepCopy(), now: metav1.NewTime(in.Now), waited: in.Status.Waiting}
	d.st.Waiting = "" // set again by wait while the run goes on
	d.run()
	d.st.StepWeight = d.stepWeight()
	d.applyWeights()
	d.recordEpochs()
	d.out.Status = *d.st
	return d.out
}

func (d *decider) event(warning bool, reason, format string, args ...any) {
	d.out.Events = append(d.out.Events, Event{Warning: warning, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

func (d *decider) wait(reason cxv1.WaitingReason, format string, args ...any) {
	d.st.Waiting, d.out.WaitingMessage = reason, fmt.Sprintf(format, args...)
}

func (d *decider) steps() []cxv1.Step { return d.in.Spec.Steps }

func (d *decider) stepWeight() int32 {
	if d.st.CurrentStep < 1 || int(d.st.CurrentStep) > len(d.steps()) {
		return 0
	}
	return d.steps()[d.st.CurrentStep-1].Weight
}

// Initialize gives an experiment never reconciled its first run: Pending,
// run 1. It leaves any other status as it is.
func Initialize(st *cxv1.CXExperimentStatus) {
	if st.Phase == "" {
		st.Phase = cxv1.PhasePending
	}
	if st.Run == 0 {
		st.Run = 1
	}
}

func (d *decider) run() {
	Initialize(d.st)
	d.retry()
	if d.st.Phase.Terminal() {
		d.ignoreActions()
		return
	}
	if d.abort() {
		return
	}
	d.stepsShortened()
	if d.st.Phase == cxv1.PhasePending {
		d.start()
	}
	d.rollBackInferior()
	if d.allRolledBack() {
		return
	}
	if d.pause() {
		return
	}
	if d.promoteRequested() {
		return
	}
	d.evaluateStep()
}

// stepsShortened handles spec.steps edited to fewer steps than the current
// one: the experiment continues at the new last step, whose clock starts now.
func (d *decider) stepsShortened() {
	n := int32(len(d.steps()))
	if d.st.CurrentStep <= n || n == 0 {
		return
	}
	d.event(true, EventStepsChanged, "spec.steps now has %d steps and the experiment was at step %d: continuing at step %d/%d (weight %d%%)",
		n, d.st.CurrentStep, n, n, d.steps()[n-1].Weight)
	d.st.CurrentStep = n
	d.st.StepStartedAt = &d.now
}

// retry starts a new run of a RolledBack or Failed experiment.
func (d *decider) retry() {
	tok := d.in.Actions.Retry
	if tok == "" || tok == d.st.HandledActions.Retry {
		return
	}
	d.st.HandledActions.Retry = tok
	if d.st.Phase != cxv1.PhaseRolledBack && d.st.Phase != cxv1.PhaseFailed {
		d.event(true, EventActionIgnored, "retry ignored: only a RolledBack or Failed experiment can be retried (phase %s)", d.st.Phase)
		return
	}
	prev := d.st.Run
	handled := d.st.HandledActions
	conditions := d.st.Conditions
	*d.st = cxv1.CXExperimentStatus{
		Phase:          cxv1.PhasePending,
		Run:            prev + 1,
		HandledActions: handled,
		Conditions:     conditions,
	}
	d.event(false, EventRetried, "run %d starts from step 1 with fresh responses (run %d ended)", prev+1, prev)
}

// ignoreActions records promote/abort tokens that arrive after the end.
func (d *decider) ignoreActions() {
	if tok := d.in.Actions.Promote; tok != "" && tok != d.st.HandledActions.Promote {
		d.st.HandledActions.Promote = tok
		d.event(true, EventActionIgnored, "promote ignored: the experiment has ended (phase %s)", d.st.Phase)
	}
	if tok := d.in.Actions.Abort; tok != "" && tok != d.st.HandledActions.Abort {
		d.st.HandledActions.Abort = tok
		d.event(true, EventActionIgnored, "abort ignored: the experiment has ended (phase %s)", d.st.Phase)
	}
}

func (d *decider) abort() bool {
	tok := d.in.Actions.Abort
	if tok == "" || tok == d.st.HandledActions.Abort {
		return false
	}
	d.st.HandledActions.Abort = tok
	if d.st.Phase == cxv1.PhasePending {
		d.st.Phase = cxv1.PhaseRolledBack
		d.st.CompletedAt = &d.now
		d.st.Segments = nil // the run never started
		d.event(true, EventAborted, "aborted before the first step; no traffic was shifted")
		return true
	}
	n := 0
	d.eachActive(func(seg *cxv1.SegmentStatus, v *cxv1.VariantStatus) {
		d.rollBack(seg, v, cxv1.RollbackAborted, "aborted by the "+cxv1.AnnotationAbort+" annotation")
		n++
	})
	d.st.Phase = cxv1.PhaseRolledBack
	d.st.CompletedAt = &d.now
	d.st.PausedAt = nil
	d.event(true, EventAborted, "aborted at step %d/%d: %d variant(s) rolled back; all traffic on the control", d.st.CurrentStep, len(d.steps()), n)
	return true
}

func (d *decider) start() {
	d.st.StartedAt = &d.now
	d.st.CurrentStep = 1
	d.st.StepStartedAt = &d.now
	d.st.Phase = cxv1.PhaseProgressing
	if rs, err := d.in.Spec.Satisfaction.RunSettings(); err == nil { // the controller refuses invalid specs before
		d.st.Settings = &rs
	}
	if d.st.Segments == nil {
		// The controller creates them (NewSegments) when it measures the
		// run before it starts, so the first measurement shares the start's
		// status write.
		d.st.Segments = NewSegments(d.in.Spec)
	}
	var names []string
	for _, v := range d.in.Spec.Variants {
		if !v.Control {
			names = append(names, v.Name)
		}
	}
	d.event(false, EventStarted, "run %d started: step 1/%d sends %d%% of each segment's traffic to each of %s (segments: %s)",
		d.st.Run, len(d.steps()), d.steps()[0].Weight, strings.Join(names, ", "), strings.Join(d.in.Spec.SegmentNames(), ", "))
}

// NewSegments returns the segments of a run that starts: in each, the
// control and every other variant, Active.
func NewSegments(spec *cxv1.CXExperimentSpec) []cxv1.SegmentStatus {
	control := spec.ControlVariant()
	names := spec.SegmentNames()
	out := make([]cxv1.SegmentStatus, 0, len(names))
	for _, s := range names {
		seg := cxv1.SegmentStatus{Name: s}
		seg.Variants = append(seg.Variants, cxv1.VariantStatus{Name: control.Name, State: cxv1.StateControl})
		for _, v := range spec.Variants {
			if !v.Control {
				seg.Variants = append(seg.Variants, cxv1.VariantStatus{Name: v.Name, State: cxv1.StateActive})
			}
		}
		out = append(out, seg)
	}
	return out
}

func (d *decider) eachActive(f func(seg *cxv1.SegmentStatus, v *cxv1.VariantStatus)) {
	for i := range d.st.Segments {
		seg := &d.st.Segments[i]
		for j := range seg.Variants {
			if seg.Variants[j].State == cxv1.StateActive {
				f(seg, &seg.Variants[j])
			}
		}
	}
}

func (d *decider) rollBack(seg *cxv1.SegmentStatus, v *cxv1.VariantStatus, reason cxv1.RollbackReason, evidence string) {
	j := d.in.Judgements.get(seg.Name, v.Name)
	v.State = cxv1.StateRolledBack
	rb := cxv1.Rollback{
		Variant: v.Name, Segment: seg.Name, Reason: reason, At: d.now,
		Step: d.st.CurrentStep, Responses: j.Responses, Evidence: evidence,
	}
	d.st.Rollbacks = append(d.st.Rollbacks, rb)
	d.out.RolledBack = append(d.out.RolledBack, rb)
	d.event(true, EventRolledBack, "%s rolled back in segment %s at step %d (%s after %d responses): %s",
		v.Name, seg.Name, d.st.CurrentStep, reason, j.Responses, evidence)
}

// rollBackInferior takes inferior or guardrail-breaching variants out of
// their segment. It runs while paused too: safety does not wait.
func (d *decider) rollBackInferior() {
	d.eachActive(func(seg *cxv1.SegmentStatus, v *cxv1.VariantStatus) {
		j := d.in.Judgements.get(seg.Name, v.Name)
		if j.Verdict == cxv1.VerdictInferior {
			reason := j.Reason
			if reason == "" {
				reason = cxv1.RollbackInferior
			}
			d.rollBack(seg, v, reason, j.Evidence)
			return
		}
		if b, ok := d.in.Breaches[seg.Name][v.Name]; ok {
			d.rollBack(seg, v, cxv1.RollbackGuardrail, b)
		}
	})
}

// allRolledBack ends the run when no variant is active or promoted anywhere.
func (d *decider) allRolledBack() bool {
	for _, seg := range d.st.Segments {
		for _, v := range seg.Variants {
			if v.State == cxv1.StateActive || v.State == cxv1.StatePromoted {
				return false
			}
		}
	}
	d.st.Phase = cxv1.PhaseRolledBack
	d.st.CompletedAt = &d.now
	d.st.PausedAt = nil
	d.event(true, EventAllRolledBack, "no variant is active in any segment: all traffic is back on the control (%d rollback(s) in run %d)", len(d.st.Rollbacks), d.st.Run)
	return true
}

func (d *decider) pause() bool {
	if d.in.Spec.Paused {
		if d.st.Phase != cxv1.PhasePaused {
			d.st.Phase = cxv1.PhasePaused
			d.st.PausedAt = &d.now
			d.event(false, EventPaused, "paused at step %d/%d; weights held, rollbacks on evidence still apply", d.st.CurrentStep, len(d.steps()))
		}
		d.wait(cxv1.WaitingPaused, "paused at step %d/%d by spec.paused", d.st.CurrentStep, len(d.steps()))
		return true
	}
	if d.st.Phase == cxv1.PhasePaused {
		if d.st.PausedAt != nil && d.st.StepStartedAt != nil {
			shifted := metav1.NewTime(d.st.StepStartedAt.Add(d.in.Now.Sub(d.st.PausedAt.Time)))
			d.st.StepStartedAt = &shifted
		}
		d.st.PausedAt = nil
		d.st.Phase = cxv1.PhaseProgressing
		d.event(false, EventResumed, "resumed at step %d/%d", d.st.CurrentStep, len(d.steps()))
	}
	return false
}

func (d *decider) promoteRequested() bool {
	tok := d.in.Actions.Promote
	if tok == "" || tok == d.st.HandledActions.Promote {
		return false
	}
	d.st.HandledActions.Promote = tok
	for _, seg := range d.st.Segments {
		if m, ok := d.in.Mismatches[seg.Name]; ok {
			d.event(true, EventMismatchIgnored, "promoted by hand although segment %s has a sample-ratio mismatch (%s): its verdicts may be biased", seg.Name, m)
		}
	}
	d.promote(true)
	return true
}

// allNonInferior reports whether every active variant is NonInferior
// everywhere, with no segment held by a sample-ratio mismatch.
func (d *decider) allNonInferior() (bool, string) {
	var pending []string
	held := map[string]bool{}
	d.eachActive(func(seg *cxv1.SegmentStatus, v *cxv1.VariantStatus) {
		if m, ok := d.in.Mismatches[seg.Name]; ok && !held[seg.Name] {
			held[seg.Name] = true
			pending = append(pending, fmt.Sprintf("segment %s is held by a sample-ratio mismatch (%s)", seg.Name, m))
		}
		if j := d.in.Judgements.get(seg.Name, v.Name); j.Verdict != cxv1.VerdictNonInferior {
			pending = append(pending, fmt.Sprintf("%s in %s is %s", v.Name, seg.Name, j.Verdict))
		}
	})
	return len(pending) == 0, strings.Join(pending, "; ")
}

func (d *decider) evaluateStep() {
	step := d.steps()[d.st.CurrentStep-1]
	elapsed := d.in.Now.Sub(d.st.StepStartedAt.Time)
	last := int(d.st.CurrentStep) == len(d.steps())
	ready, pending := d.allNonInferior()

	if elapsed < step.MinDuration.Duration {
		d.out.RequeueAfter = step.MinDuration.Duration - elapsed
		d.waitMinDuration(step)
		return
	}
	if ready {
		if last {
			if d.in.Spec.Promotion == cxv1.PromotionManual {
				if !d.awaiting() {
					d.event(false, EventAwaitPromotion, "all steps passed with every active variant non-inferior; waiting for a promote action (kubectl cx promote)")
				}
				d.wait(cxv1.WaitingPromotion, "all %d steps passed; waiting for a promote action (annotation %s)", len(d.steps()), cxv1.AnnotationPromote)
				return
			}
			d.promote(false)
			return
		}
		d.advance("every active variant is non-inferior in every segment")
		return
	}
	if step.MaxDuration == nil || elapsed < step.MaxDuration.Duration {
		if step.MaxDuration != nil {
			d.out.RequeueAfter = step.MaxDuration.Duration - elapsed
		}
		d.wait(cxv1.WaitingStepRunning, "step %d/%d collecting evidence: %s", d.st.CurrentStep, len(d.steps()), pending)
		return
	}
	// maxDuration passed undecided.
	switch d.in.Spec.OnInconclusive {
	case cxv1.InconclusiveHold:
		if !d.holding() {
			d.event(true, EventInconclusive, "step %d/%d reached its maxDuration %s undecided (%s); holding until the evidence decides", d.st.CurrentStep, len(d.steps()), step.MaxDuration.Duration, pending)
		}
		d.wait(cxv1.WaitingInconclusive, "step %d/%d passed its maxDuration undecided; holding: %s", d.st.CurrentStep, len(d.steps()), pending)
	case cxv1.InconclusiveContinue:
		if last {
			if !d.holding() {
				d.event(true, EventInconclusive, "last step reached its maxDuration undecided (%s); an undecided variant is never promoted: holding", pending)
			}
			d.wait(cxv1.WaitingInconclusive, "last step passed its maxDuration undecided; holding: %s", pending)
			return
		}
		d.event(true, EventContinued, "step %d/%d reached its maxDuration undecided (%s); continuing as spec.onInconclusive says", d.st.CurrentStep, len(d.steps()), pending)
		d.advance("maxDuration passed undecided (onInconclusive: Continue)")
	default: // Rollback
		d.eachActive(func(seg *cxv1.SegmentStatus, v *cxv1.VariantStatus) {
			j := d.in.Judgements.get(seg.Name, v.Name)
			if j.Verdict != cxv1.VerdictNonInferior {
				d.rollBack(seg, v, cxv1.RollbackInconclusive,
					fmt.Sprintf("still %s after the step's maxDuration %s: %s", j.Verdict, step.MaxDuration.Duration, j.Evidence))
			}
		})
		if d.allRolledBack() {
			return
		}
		if last {
			d.evaluateStep() // the remaining variants are all non-inferior
			return
		}
		d.advance("the variants left are non-inferior (undecided ones were rolled back)")
	}
}

// holding and awaiting read status.waiting as the previous decision left
// it, so that a repeated reconcile does not repeat the event.
func (d *decider) holding() bool  { return d.waited == cxv1.WaitingInconclusive }
func (d *decider) awaiting() bool { return d.waited == cxv1.WaitingPromotion }

func (d *decider) advance(why string) {
	d.st.CurrentStep++
	d.st.StepStartedAt = &d.now
	step := d.steps()[d.st.CurrentStep-1]
	d.event(false, EventStepAdvanced, "step %d/%d: %d%% of each segment's traffic to each active variant (%s)%s",
		d.st.CurrentStep, len(d.steps()), step.Weight, why, d.activeSummary())
	if step.MinDuration.Duration > 0 {
		d.out.RequeueAfter = step.MinDuration.Duration
		d.waitMinDuration(step)
		return
	}
	if step.MaxDuration != nil {
		d.out.RequeueAfter = step.MaxDuration.Duration
	}
	d.wait(cxv1.WaitingStepRunning, "step %d/%d started", d.st.CurrentStep, len(d.steps()))
}

// waitMinDuration says the step holds for its minDuration. The message names
// when the hold ends rather than a countdown, and advance uses it too, so a
// reconcile that changes nothing else writes no status.
func (d *decider) waitMinDuration(step cxv1.Step) {
	d.wait(cxv1.WaitingStepRunning, "step %d/%d holds for its minDuration %s, until %s", d.st.CurrentStep, len(d.steps()), step.MinDuration.Duration,
		d.st.StepStartedAt.Add(step.MinDuration.Duration).UTC().Format(time.RFC3339))
}

func (d *decider) activeSummary() string {
	var parts []string
	for _, seg := range d.st.Segments {
		for _, v := range seg.Variants {
			if v.State == cxv1.StateActive {
				j := d.in.Judgements.get(seg.Name, v.Name)
				if j.Evidence != "" {
					parts = append(parts, fmt.Sprintf("%s/%s: %s", seg.Name, v.Name, j.Evidence))
				}
			}
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, "; ")
}

// verdictRank orders verdicts for a manual promotion: proven before unproven.
func verdictRank(v cxv1.Verdict) int {
	switch v {
	case cxv1.VerdictNonInferior:
		return 0
	case cxv1.VerdictInconclusive:
		return 1
	case cxv1.VerdictInsufficientData:
		return 2
	default:
		return 3
	}
}

// promote routes each segment to its best variant and ends the run. An
// automatic promotion takes only NonInferior variants; a manual one (a human
// decision) takes the best variant that is not Inferior, NonInferior first.
func (d *decider) promote(manual bool) {
	var parts []string
	for i := range d.st.Segments {
		seg := &d.st.Segments[i]
		best := -1
		for j, v := range seg.Variants {
			if v.State != cxv1.StateActive {
				continue
			}
			jd := d.in.Judgements.get(seg.Name, v.Name)
			if jd.Verdict == cxv1.VerdictInferior || (!manual && jd.Verdict != cxv1.VerdictNonInferior) {
				continue
			}
			if best < 0 {
				best = j
				continue
			}
			bj := d.in.Judgements.get(seg.Name, seg.Variants[best].Name)
			if verdictRank(jd.Verdict) < verdictRank(bj.Verdict) ||
				(verdictRank(jd.Verdict) == verdictRank(bj.Verdict) && jd.Score > bj.Score) {
				best = j
			}
		}
		for j := range seg.Variants {
			if seg.Variants[j].State == cxv1.StateActive {
				seg.Variants[j].State = cxv1.StateRetired
			}
		}
		if best >= 0 {
			seg.Variants[best].State = cxv1.StatePromoted
			seg.Promoted = seg.Variants[best].Name
			jd := d.in.Judgements.get(seg.Name, seg.Promoted)
			parts = append(parts, fmt.Sprintf("%s -> %s (%s)", seg.Name, seg.Promoted, jd.Evidence))
		} else {
			seg.Promoted = seg.Variants[0].Name
			parts = append(parts, fmt.Sprintf("%s -> %s (no variant qualified)", seg.Name, seg.Promoted))
		}
	}
	d.st.Phase = cxv1.PhaseSucceeded
	d.st.CompletedAt = &d.now
	d.st.PausedAt = nil
	how := "automatically after the last step"
	if manual {
		how = "by the " + cxv1.AnnotationPromote + " annotation"
	}
	sort.Strings(parts)
	d.event(false, EventPromoted, "promoted %s: %s", how, strings.Join(parts, "; "))
}

// applyWeights writes each variant's weight from its state.
func (d *decider) applyWeights() {
	w := DesiredWeights(d.in.Spec, d.st)
	for i := range d.st.Segments {
		seg := &d.st.Segments[i]
		for j := range seg.Variants {
			seg.Variants[j].Weight = w[seg.Name][seg.Variants[j].Name]
		}
	}
}

// DesiredWeights returns the traffic split a status calls for:
// weights[segment][variant] in percent. Active variants get the step
// weight, a promoted variant 100, others 0; the control gets the rest. Before
// the first step and after a rollback or failure everything goes to the
// control.
func DesiredWeights(spec *cxv1.CXExperimentSpec, st *cxv1.CXExperimentStatus) map[string]map[string]int32 {
	control := spec.ControlVariant()
	out := map[string]map[string]int32{}
	var stepWeight int32
	if st.CurrentStep >= 1 && int(st.CurrentStep) <= len(spec.Steps) {
		stepWeight = spec.Steps[st.CurrentStep-1].Weight
	}
	live := st.Phase == cxv1.PhaseProgressing || st.Phase == cxv1.PhasePaused || st.Phase == cxv1.PhaseSucceeded
	for _, name := range spec.SegmentNames() {
		w := map[string]int32{}
		for _, v := range spec.Variants {
			w[v.Name] = 0
		}
		var others int32
		if live {
			for _, seg := range st.Segments {
				if seg.Name != name {
					continue
				}
				for _, v := range seg.Variants {
					switch v.State {
					case cxv1.StateActive:
						w[v.Name] = stepWeight
					case cxv1.StatePromoted:
						w[v.Name] = 100
					}
					if v.Name != control.Name {
						others += w[v.Name]
					}
				}
			}
		}
		if others > 100 {
			others = 100 // the CRD forbids it; never route a negative share
		}
		w[control.Name] = 100 - others
		out[name] = w
	}
	return out
}
