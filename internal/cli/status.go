package cli

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// defaultEvents is how many of the latest events status shows.
const defaultEvents = 10

func newStatusCommand(o *Options) *cobra.Command {
	var out *outputFlags
	var watch, wait bool
	var timeout time.Duration
	var events int
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show where an experiment stands, or wait for its outcome (--wait, --timeout)",
		Long: `Show one CXExperiment for people: its hypothesis, touchpoint, phase and run;
the current step with a progress bar; for each segment a table of variants
(state, weight, responses, share of the responses, score ± the half-width of
its always-valid interval, difference to the control with its interval, and
the verdict); the rollbacks with their evidence; the conditions; and the
latest events (oldest first).

--watch follows the experiment through a watch (no polling): on a terminal
the view is redrawn in place; otherwise a new block is printed each time the
experiment or its events change. It stops on Ctrl-C or when the experiment
is deleted.

--wait (or --timeout, which implies it) waits for the run's outcome, for CI
pipelines, like 'kubectl argo rollouts status': it prints a line each time the
phase, step or message changes (or redraws the view with --watch) and exits
  0  Succeeded (promoted)
  4  RolledBack (every variant rolled back in every segment)
  5  Failed (the experiment cannot run; see its Ready condition)
  6  the timeout passed first (a paused experiment, or one waiting for
     'kubectl cx promote', keeps waiting until then)
  3  the experiment does not exist, or was deleted while waiting
With -o, the progress lines go to stderr and the final object to stdout.

-o wide|name|json|yaml|jsonpath=...|custom-columns=...|go-template=... print
the object with kubectl's printers instead of the view.`,
		Example: `  kubectl cx status checkout-redesign
  kubectl cx status checkout-redesign -n shop --watch
  kubectl cx status checkout-redesign -o yaml
  kubectl cx status checkout-redesign -o jsonpath='{.status.phase}'

  # In a pipeline: wait up to 30 minutes for the outcome
  kubectl cx status checkout-redesign -n shop --timeout 30m`,
		Args:              oneName,
		ValidArgsFunction: o.completeExperiments,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := out.printer(); err != nil {
				return err
			}
			if watch && out.format() != "" {
				return usageErrorf("--watch cannot be combined with --output")
			}
			if events < 0 {
				return usageErrorf("--events must be 0 or more, got %d", events)
			}
			if timeout < 0 {
				return usageErrorf("--timeout must be 0 (no limit) or more, got %s", timeout)
			}
			wait = wait || timeout > 0
			c, ns, err := o.clientInNamespace()
			if err != nil {
				return err
			}
			if wait {
				return o.waitStatus(cmd.Context(), c, ns, args[0], waitOptions{timeout: timeout, view: watch, events: events, out: out})
			}
			if watch {
				return o.watchStatus(cmd.Context(), c, ns, args[0], events)
			}
			exp, err := getExperiment(cmd.Context(), c, ns, args[0])
			if err != nil {
				return err
			}
			if out.format() != "" {
				return out.printExperiments(o.Out, []cxv1.CXExperiment{*exp}, true, false, o.Now())
			}
			evs, evErr := experimentEvents(cmd.Context(), c, exp)
			if evErr != nil {
				o.stderrf("Warning: cannot read the events: %v\n", evErr)
			}
			return RenderStatus(o.Out, exp, lastEvents(evs, events), o.renderOptions())
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "follow the experiment and show it again each time it changes")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the run's outcome and exit with its code (see above)")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "with --wait: give up after this long (exit code 6), e.g. 30m; 0 waits forever; setting it implies --wait")
	cmd.Flags().IntVar(&events, "events", defaultEvents, "how many of the latest events to show")
	out = newOutputFlags(cmd)
	return cmd
}

// RenderStatus writes the readable view of one experiment. events are shown
// as given (callers pass the latest ones, oldest first).
func RenderStatus(w io.Writer, exp *cxv1.CXExperiment, events []eventsv1.Event, o RenderOptions) error {
	p := &printer{w: w}
	renderHeader(p, exp, o)
	p.println()
	p.println(StepLine(exp, o.Now))
	renderSegments(p, exp, o)
	renderRollbacks(p, exp.Status.Rollbacks, o)
	renderConditions(p, exp.Status.Conditions, o)
	renderEvents(p, events, o)
	return p.err
}

func renderHeader(p *printer, exp *cxv1.CXExperiment, o RenderOptions) {
	st := &exp.Status
	kv := &table{}
	kv.add(c("Name:"), colored(ansiBold, exp.Namespace+"/"+exp.Name))
	kv.add(c("Hypothesis:"), c(orDash(exp.Spec.Hypothesis)))
	kv.add(c("Touchpoint:"), c(orDash(exp.Spec.Touchpoint)))
	kv.add(c("Phase:"), colored(phaseColors[st.Phase], phaseOf(exp)))
	kv.add(c("Run:"), c(runLine(exp, o.Now)))
	kv.add(c("Judged on:"), c(settingsLine(exp)))
	if changed, diff := exp.SettingsChanged(); changed && !st.Phase.Terminal() {
		kv.add(c("Settings:"), colored(ansiYellow, "spec.satisfaction changed during this run ("+diff+"); it applies to the next run: kubectl cx retry "+exp.Name))
	}
	kv.add(c("Traffic:"), c(trafficLine(exp)))
	if st.MeasuredAt != nil {
		kv.add(c("Measured:"), c(age(o.Now, st.MeasuredAt.Time)+" ago"))
	}
	if msg := waitingMessage(st); msg != "" {
		kv.add(c("Waiting:"), c(msg))
	}
	kv.write(p, o)
}

// waitingMessage says what a run that has not ended waits for: the message
// of its Reconciling condition, or of Ready while paused or awaiting a
// promotion (no Reconciling then).
func waitingMessage(st *cxv1.CXExperimentStatus) string {
	if st.Phase.Terminal() {
		return ""
	}
	for _, t := range []string{cxv1.ConditionReconciling, cxv1.ConditionReady} {
		if cond := findCondition(st.Conditions, t); cond != nil && cond.Message != "" {
			return cond.Message
		}
	}
	return ""
}

func renderSegments(p *printer, exp *cxv1.CXExperiment, o RenderOptions) {
	if len(exp.Status.Segments) == 0 {
		p.println()
		p.printf("%s %s\n", o.paint(ansiBold, "Segments:"), strings.Join(exp.Spec.SegmentNames(), ", "))
		p.println("  no measurements yet")
		return
	}
	for _, seg := range exp.Status.Segments {
		p.println()
		head := "Segment " + seg.Name
		if seg.Promoted != "" {
			head += " (promoted: " + seg.Promoted + ")"
		}
		if seg.Epoch > 0 {
			head += fmt.Sprintf(" (epoch %d)", seg.Epoch)
		}
		p.println(o.paint(ansiBold, head))
		if sr := seg.SampleRatio; sr != nil && sr.Mismatch {
			p.printf("  %s %s (epoch %d, evidence %s): it cannot advance or be promoted until the shares match\n",
				o.paint(ansiRed, "Sample-ratio mismatch:"), sr.Shares, sr.Epoch, sr.Evidence)
		}
		t := &table{indent: "  "}
		t.header("VARIANT", "STATE", "WEIGHT", "RESPONSES", "SHARE", "SCORE", "DIFF", "VERDICT")
		for _, v := range seg.Variants {
			t.add(c(v.Name), colored(stateColors[v.State], string(v.State)), c(fmt.Sprintf("%d%%", v.Weight)),
				c(thousands(v.Responses)), c(share(v.RealizedShare)), c(pm(v.Score, v.ScoreInterval)),
				c(diffWithInterval(v.Difference, v.DifferenceInterval)), colored(verdictColors[v.Verdict], orDash(string(v.Verdict))))
		}
		t.write(p, o)
		for _, v := range seg.Variants {
			if v.Message != "" && v.State != cxv1.StateControl {
				p.printf("  %s: %s\n", v.Name, v.Message)
			}
		}
	}
}

func renderRollbacks(p *printer, rollbacks []cxv1.Rollback, o RenderOptions) {
	if len(rollbacks) == 0 {
		return
	}
	p.println()
	p.println(o.paint(ansiBold, "Rollbacks:"))
	t := &table{indent: "  "}
	t.header("SEGMENT", "VARIANT", "REASON", "STEP", "RESPONSES", "AT")
	for _, r := range rollbacks {
		t.add(c(r.Segment), c(r.Variant), colored(ansiRed, string(r.Reason)), c(stepNumber(r.Step)),
			c(thousands(r.Responses)), c(timestamp(r.At.Time)+" ("+age(o.Now, r.At.Time)+" ago)"))
	}
	t.write(p, o)
	for _, r := range rollbacks {
		if r.Evidence != "" {
			p.printf("  %s in %s: %s\n", r.Variant, r.Segment, r.Evidence)
		}
	}
}

func renderConditions(p *printer, conds []metav1.Condition, o RenderOptions) {
	if len(conds) == 0 {
		return
	}
	p.println()
	p.println(o.paint(ansiBold, "Conditions:"))
	t := &table{indent: "  "}
	t.header("TYPE", "STATUS", "REASON", "AGE", "MESSAGE")
	for _, cond := range conds {
		t.add(c(cond.Type), c(string(cond.Status)), c(cond.Reason), c(age(o.Now, cond.LastTransitionTime.Time)), c(cond.Message))
	}
	t.write(p, o)
}

func renderEvents(p *printer, events []eventsv1.Event, o RenderOptions) {
	p.println()
	if len(events) == 0 {
		p.printf("%s none\n", o.paint(ansiBold, "Events:"))
		return
	}
	p.println(o.paint(ansiBold, fmt.Sprintf("Events (last %d):", len(events))))
	t := &table{indent: "  "}
	t.header("AGE", "TYPE", "REASON", "MESSAGE")
	for i := range events {
		e := &events[i]
		color := ""
		if e.Type == "Warning" {
			color = ansiYellow
		}
		t.add(c(age(o.Now, eventTime(e))), colored(color, e.Type), c(e.Reason), c(oneLine(e.Note)))
	}
	t.write(p, o)
}

// StepLine is the step with a progress bar over the steps, e.g.
// "Step 2/3 [██████░░░░] 25%  (12m in step, min 30m)".
func StepLine(exp *cxv1.CXExperiment, now time.Time) string {
	st := &exp.Status
	total, cur := len(exp.Spec.Steps), int(st.CurrentStep)
	line := fmt.Sprintf("Step %d/%d %s %s", cur, total, ProgressBar(cur, total, 10), weightOf(exp))
	var parts []string
	switch {
	case st.Phase == "" || st.Phase == cxv1.PhasePending:
		parts = append(parts, "waiting to start")
	case st.Phase.Terminal():
		if st.CompletedAt != nil {
			parts = append(parts, "ended "+age(now, st.CompletedAt.Time)+" ago")
		} else {
			parts = append(parts, "ended")
		}
	default:
		if st.StepStartedAt != nil {
			end := now
			if st.Phase == cxv1.PhasePaused && st.PausedAt != nil {
				end = st.PausedAt.Time
			}
			parts = append(parts, age(end, st.StepStartedAt.Time)+" in step")
		}
		if cur >= 1 && cur <= total {
			step := exp.Spec.Steps[cur-1]
			parts = append(parts, "min "+specDuration(step.MinDuration.Duration))
			if step.MaxDuration != nil {
				parts = append(parts, "max "+specDuration(step.MaxDuration.Duration))
			}
		}
		if st.Phase == cxv1.PhasePaused {
			if st.PausedAt != nil {
				parts = append(parts, "paused "+age(now, st.PausedAt.Time)+" ago, the clock is stopped")
			} else {
				parts = append(parts, "paused")
			}
		}
	}
	if len(parts) == 0 {
		return line
	}
	return line + "  (" + strings.Join(parts, ", ") + ")"
}

// runLine is "1, started 2h ago" (and when it ended).
func runLine(exp *cxv1.CXExperiment, now time.Time) string {
	st := &exp.Status
	run := st.Run
	if run == 0 {
		run = 1
	}
	s := strconv.Itoa(int(run))
	if st.StartedAt != nil {
		s += ", started " + timestamp(st.StartedAt.Time) + " (" + age(now, st.StartedAt.Time) + " ago)"
	} else {
		s += ", not started"
	}
	if st.CompletedAt != nil {
		s += ", ended " + timestamp(st.CompletedAt.Time) + " (" + age(now, st.CompletedAt.Time) + " ago)"
	}
	return s
}

// settingsLine summarises the settings the run is judged by (status.settings,
// frozen when the run started, else spec.satisfaction), defaults applied.
func settingsLine(exp *cxv1.CXExperiment) string {
	s, err := exp.JudgedSettings()
	if err != nil {
		return "invalid settings: " + err.Error()
	}
	parts := []string{scaleText(s), "max drop " + points(s.MaxDrop) + " points"}
	if s.Minimum != nil {
		parts = append(parts, "minimum "+points(*s.Minimum))
	}
	parts = append(parts, "confidence "+percent(s.Confidence)+"%",
		"at least "+thousands(s.MinResponses)+" responses per variant and segment")
	return strings.Join(parts, ", ")
}

// scaleText describes the metric: "CSAT on 1..5 (satisfied: 4 or above)".
func scaleText(s cxv1.SatisfactionSettings) string {
	if s.Metric == cxv1.MetricNPS {
		return "NPS on 0..10 (promoters 9-10, detractors 0-6)"
	}
	return fmt.Sprintf("CSAT on %d..%d (satisfied: %d or above)", s.ScoreMin, s.ScoreMax, s.SatisfiedAtOrAbove)
}

// points formats a configured number of points as written: 3, 2.5.
func points(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// percent formats a fraction as a percentage: 0.95 → 95, 0.999 → 99.9.
func percent(f float64) string { return strconv.FormatFloat(math.Round(f*1000)/10, 'g', -1, 64) }

// trafficLine describes how traffic moves.
func trafficLine(exp *cxv1.CXExperiment) string {
	t := exp.Spec.Traffic
	var s string
	switch {
	case t.GatewayAPI != nil:
		s = "HTTPRoute " + t.GatewayAPI.HTTPRoute
		if exp.Status.Traffic.ChildRoute != "" {
			s += " (segments routed by " + exp.Status.Traffic.ChildRoute + ")"
		}
	case t.Replicas != nil:
		s = fmt.Sprintf("replicas of the variants' Deployments (%d pods in all)", t.Replicas.Total)
	default:
		s = "-"
	}
	var vs []string
	for _, v := range exp.Spec.Variants {
		if v.Control {
			vs = append(vs, v.Name+" (control)")
		} else {
			vs = append(vs, v.Name)
		}
	}
	return s + "; variants " + strings.Join(vs, ", ")
}

func stepNumber(s int32) string {
	if s == 0 {
		return "-"
	}
	return itoa(s)
}

// oneLine keeps multi-line notes on one table row.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func findCondition(conds []metav1.Condition, t string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}
