package cli

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	eventsv1 "k8s.io/api/events/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// ReportAPIVersion identifies the JSON shape of Report. Fields may be added;
// a field is never renamed, retyped or removed without a new version.
const ReportAPIVersion = "kubectl-cx.rapport.dev/v1"

// ReportKind is the kind of the JSON report.
const ReportKind = "CXExperimentReport"

// Report is the final report of an experiment's current run, as printed by
// `kubectl cx report -o json`. Scores, differences and thresholds are in
// points (CSAT 0..100, NPS -100..100); shares and confidence in percent.
// Optional fields are omitted when unknown (for example no score before the
// first response).
type Report struct {
	// APIVersion is ReportAPIVersion.
	APIVersion string `json:"apiVersion"`
	// Kind is ReportKind.
	Kind string `json:"kind"`
	// GeneratedAt is when the report was made.
	GeneratedAt time.Time `json:"generatedAt"`
	// Experiment identifies the experiment and its current run.
	Experiment ReportExperiment `json:"experiment"`
	// Variants are the variants of the spec, control first.
	Variants []ReportVariant `json:"variants"`
	// Segments are the segments the experiment is judged in ("all" without segments).
	Segments []string `json:"segments"`
	// Settings are the thresholds of the run, defaults applied.
	Settings ReportSettings `json:"settings"`
	// Timeline merges status timestamps and events, oldest first.
	Timeline []TimelineEntry `json:"timeline"`
	// Results are the latest measurement per segment.
	Results []SegmentResult `json:"results"`
	// Decision is what happened (or, for a run still going, where it stands).
	Decision Decision `json:"decision"`
}

// ReportExperiment identifies the experiment and its run.
type ReportExperiment struct {
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	UID        string `json:"uid,omitempty"`
	Hypothesis string `json:"hypothesis,omitempty"`
	Touchpoint string `json:"touchpoint,omitempty"`
	// Phase is Pending, Progressing, Paused, Succeeded, RolledBack or Failed.
	Phase string `json:"phase"`
	// Run is the run number (1, then +1 per retry).
	Run int32 `json:"run"`
	// CurrentStep and Steps: the step reached, out of Steps.
	CurrentStep int32      `json:"currentStep"`
	Steps       int        `json:"steps"`
	StartedAt   *time.Time `json:"startedAt,omitempty"`
	CompletedAt *time.Time `json:"completedAt,omitempty"`
}

// ReportVariant is one variant of the spec and where it is served from.
type ReportVariant struct {
	Name    string `json:"name"`
	Control bool   `json:"control"`
	// Service is "name:port" (Gateway API traffic).
	Service string `json:"service,omitempty"`
	// Deployment is the Deployment (replica traffic).
	Deployment string `json:"deployment,omitempty"`
}

// ReportSettings are spec.satisfaction (defaults applied) and the rollout plan.
type ReportSettings struct {
	// AnalysisSettings are spec.satisfaction's metric, scale and thresholds
	// (inline in the JSON: metric, scaleMin, ... minResponses).
	AnalysisSettings
	// Source is "collector" or "SatisfactionMetric/<name>".
	Source         string       `json:"source"`
	Promotion      string       `json:"promotion"`
	OnInconclusive string       `json:"onInconclusive"`
	Steps          []ReportStep `json:"steps"`
	// Guardrails are the names of the guardrails.
	Guardrails []string `json:"guardrails,omitempty"`
}

// ReportStep is one step of the plan; durations are Go durations ("30m", "1h30m").
type ReportStep struct {
	Weight      int32  `json:"weight"`
	MinDuration string `json:"minDuration"`
	MaxDuration string `json:"maxDuration,omitempty"`
}

// TimelineEntry is one moment of the run.
type TimelineEntry struct {
	At time.Time `json:"at"`
	// Source is "status" (a timestamp of the experiment's status) or "event".
	Source string `json:"source"`
	// Type is the event type, Normal or Warning (events only).
	Type    string `json:"type,omitempty"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// SegmentResult is the latest measurement of one segment.
type SegmentResult struct {
	Segment string `json:"segment"`
	// Promoted is the variant promoted in the segment, if any.
	Promoted string          `json:"promoted,omitempty"`
	Variants []VariantResult `json:"variants"`
}

// VariantResult is one variant's measurement in one segment.
type VariantResult struct {
	Name    string `json:"name"`
	Control bool   `json:"control"`
	// State is Control, Active, RolledBack, Promoted or Retired.
	State string `json:"state"`
	// Weight is the percentage of the segment's traffic routed to it now.
	Weight    int32 `json:"weight"`
	Responses int64 `json:"responses"`
	// Share is its percentage of the segment's responses.
	Share         *float64  `json:"share,omitempty"`
	Score         *float64  `json:"score,omitempty"`
	ScoreInterval *Interval `json:"scoreInterval,omitempty"`
	// Difference is score minus the control's score (not for the control).
	Difference         *float64  `json:"difference,omitempty"`
	DifferenceInterval *Interval `json:"differenceInterval,omitempty"`
	// Verdict is InsufficientData, Inconclusive, NonInferior or Inferior (not for the control).
	Verdict string `json:"verdict,omitempty"`
	// Explanation is the decision engine's one-line explanation.
	Explanation string `json:"explanation,omitempty"`
}

// Decision is the outcome of the run.
type Decision struct {
	// Outcome is the phase; Ended says whether the run is over.
	Outcome string `json:"outcome"`
	Ended   bool   `json:"ended"`
	// Summary is one sentence for people.
	Summary string `json:"summary"`
	// Segments says what each segment serves.
	Segments []SegmentDecision `json:"segments"`
	// Rollbacks lists every variant rolled back in a segment, with the evidence.
	Rollbacks []RollbackEntry `json:"rollbacks"`
}

// SegmentDecision is what one segment serves and why.
type SegmentDecision struct {
	Segment string `json:"segment"`
	// Serves is the promoted variant, or the control when none was promoted.
	Serves string `json:"serves"`
	// Promoted says whether Serves was promoted.
	Promoted bool   `json:"promoted"`
	Why      string `json:"why"`
}

// RollbackEntry is one entry of status.rollbacks.
type RollbackEntry struct {
	Segment   string    `json:"segment"`
	Variant   string    `json:"variant"`
	Reason    string    `json:"reason"`
	Step      int32     `json:"step,omitempty"`
	Responses int64     `json:"responses"`
	At        time.Time `json:"at"`
	Evidence  string    `json:"evidence,omitempty"`
}

func newReportCommand(o *Options) *cobra.Command {
	output := "markdown"
	var patch bool
	cmd := &cobra.Command{
		Use:   "report NAME",
		Short: "Write the final report of an experiment (Markdown, JSON or HTML)",
		Long: `Write the report of the experiment's current run: hypothesis, touchpoint,
variants, segments, the settings it was judged with (metric, max drop,
confidence, minimum responses), a timeline built from the status timestamps
and the events, the results per segment (responses, score ± interval,
difference [interval], verdict) and the decision with its evidence (rollbacks,
the variant each segment serves).

-o markdown (default) is for people and decision records; -o json is a
stable, versioned document (apiVersion ` + ReportAPIVersion + `, kind ` + ReportKind + `)
described in docs/kubectl-cx.md. -o html is one self-contained page (inline
SVG charts and CSS, no script, nothing loaded from the network) with, per
segment, the difference's confidence sequence over time against -maxDrop and
the decision marked, the weights and responses over time, and the score
distribution per variant, each with a table of its figures; it reads the
experiment's history ConfigMap (<name>-history) and its ResponseTally.
Events expire (after an hour by default), so make the report soon after the
run ends; the status part never expires.

--patch prints, for a Succeeded Gateway API experiment, the change to commit to
your HTTPRoute in Git so that Git holds the promoted split: a JSON merge patch
of spec.rules, as YAML (default) or JSON (-o json). Without segments these are
the route's rules as Rapport left them; with segments, the route's rules plus
the child route's rules of each segment promoted to a variant.`,
		Example: `  kubectl cx report checkout-redesign -n shop > checkout-redesign.md
  kubectl cx report checkout-redesign -o json | jq '.decision'
  kubectl cx report checkout-redesign -o html > checkout-redesign.html
  kubectl cx report checkout-redesign -n shop --patch > checkout-route.patch.yaml`,
		Args:              oneName,
		ValidArgsFunction: o.completeExperiments,
		RunE: func(cmd *cobra.Command, args []string) error {
			allowed := []string{"markdown", "md", "json", "html"}
			if patch {
				allowed = []string{"markdown", "yaml", "json"}
			}
			if err := outputFlag(output, allowed...); err != nil {
				return err
			}
			c, ns, err := o.clientInNamespace()
			if err != nil {
				return err
			}
			exp, err := getExperiment(cmd.Context(), c, ns, args[0])
			if err != nil {
				return err
			}
			if patch {
				return writePromotionPatch(cmd.Context(), o.Out, c, exp, output == "json")
			}
			evs, evErr := experimentEvents(cmd.Context(), c, exp)
			if evErr != nil {
				o.stderrf("Warning: cannot read the events; the timeline has the status timestamps only: %v\n", evErr)
			}
			r := BuildReport(exp, evs, o.Now())
			switch output {
			case "json":
				return writeJSONDocument(o.Out, r)
			case "html":
				return o.writeReportHTML(cmd.Context(), c, exp, r)
			}
			return RenderReportMarkdown(o.Out, r)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", output, "output format: markdown, json or html (with --patch: yaml or json)")
	cmd.Flags().BoolVar(&patch, "patch", false, "print the change to commit to your HTTPRoute in Git so that it holds the promoted split")
	return cmd
}

// BuildReport assembles the report of exp's current run from its spec,
// status and events (any order).
func BuildReport(exp *cxv1.CXExperiment, events []eventsv1.Event, now time.Time) Report {
	st := &exp.Status
	r := Report{
		APIVersion:  ReportAPIVersion,
		Kind:        ReportKind,
		GeneratedAt: now.UTC(),
		Experiment: ReportExperiment{
			Namespace: exp.Namespace, Name: exp.Name, UID: string(exp.UID),
			Hypothesis: exp.Spec.Hypothesis, Touchpoint: exp.Spec.Touchpoint,
			Phase: phaseOf(exp), Run: max(st.Run, 1),
			CurrentStep: st.CurrentStep, Steps: len(exp.Spec.Steps),
		},
		Segments: append([]string(nil), exp.Spec.SegmentNames()...),
		Settings: reportSettings(&exp.Spec),
		Timeline: []TimelineEntry{},
		Results:  []SegmentResult{},
		Variants: []ReportVariant{},
		Decision: Decision{Outcome: phaseOf(exp), Ended: st.Phase.Terminal(), Segments: []SegmentDecision{}, Rollbacks: []RollbackEntry{}},
	}
	if st.StartedAt != nil {
		t := st.StartedAt.UTC()
		r.Experiment.StartedAt = &t
	}
	if st.CompletedAt != nil {
		t := st.CompletedAt.UTC()
		r.Experiment.CompletedAt = &t
	}
	if ctl := exp.Spec.ControlVariant(); ctl != nil {
		r.Variants = append(r.Variants, reportVariant(ctl))
	}
	for i := range exp.Spec.Variants {
		if !exp.Spec.Variants[i].Control {
			r.Variants = append(r.Variants, reportVariant(&exp.Spec.Variants[i]))
		}
	}
	r.Timeline = timeline(exp, events)
	for _, seg := range st.Segments {
		res := SegmentResult{Segment: seg.Name, Promoted: seg.Promoted, Variants: []VariantResult{}}
		for _, v := range seg.Variants {
			res.Variants = append(res.Variants, variantResult(v))
		}
		r.Results = append(r.Results, res)
	}
	for _, rb := range st.Rollbacks {
		r.Decision.Rollbacks = append(r.Decision.Rollbacks, RollbackEntry{
			Segment: rb.Segment, Variant: rb.Variant, Reason: string(rb.Reason), Step: rb.Step,
			Responses: rb.Responses, At: rb.At.UTC(), Evidence: rb.Evidence,
		})
	}
	r.Decision.Segments = segmentDecisions(exp)
	r.Decision.Summary = decisionSummary(exp, r.Decision.Segments)
	return r
}

func reportVariant(v *cxv1.Variant) ReportVariant {
	out := ReportVariant{Name: v.Name, Control: v.Control, Deployment: v.Deployment}
	if v.Service != nil {
		out.Service = fmt.Sprintf("%s:%d", v.Service.Name, v.Service.Port)
	}
	return out
}

func reportSettings(spec *cxv1.CXExperimentSpec) ReportSettings {
	out := ReportSettings{
		Promotion:      string(spec.Promotion),
		OnInconclusive: string(spec.OnInconclusive),
		Steps:          []ReportStep{},
	}
	if out.Promotion == "" {
		out.Promotion = string(cxv1.PromotionAutomatic)
	}
	if out.OnInconclusive == "" {
		out.OnInconclusive = string(cxv1.InconclusiveRollback)
	}
	if s, err := spec.Satisfaction.Settings(); err == nil {
		out.Metric, out.ScaleMin, out.ScaleMax = string(s.Metric), s.ScoreMin, s.ScoreMax
		if s.Metric == cxv1.MetricCSAT {
			out.SatisfiedAtOrAbove = s.SatisfiedAtOrAbove
		}
		out.MaxDrop, out.Minimum, out.MinResponses = s.MaxDrop, s.Minimum, s.MinResponses
		out.Confidence = math.Round(s.Confidence*1000) / 10 // percent, as percent() prints it
	} else {
		out.Metric = string(spec.Satisfaction.Metric)
	}
	switch src := spec.Satisfaction.Source; {
	case src.MetricRef != nil:
		out.Source = "SatisfactionMetric/" + src.MetricRef.Name
	default:
		out.Source = "collector"
	}
	for _, s := range spec.Steps {
		rs := ReportStep{Weight: s.Weight, MinDuration: specDuration(s.MinDuration.Duration)}
		if s.MaxDuration != nil {
			rs.MaxDuration = specDuration(s.MaxDuration.Duration)
		}
		out.Steps = append(out.Steps, rs)
	}
	for _, g := range spec.Guardrails {
		out.Guardrails = append(out.Guardrails, g.Name)
	}
	return out
}

func variantResult(v cxv1.VariantStatus) VariantResult {
	return VariantResult{
		Name: v.Name, Control: v.State == cxv1.StateControl, State: string(v.State), Weight: v.Weight,
		Responses: v.Responses, Share: optionalPoints(v.RealizedShare),
		Score: optionalPoints(v.Score), ScoreInterval: optionalInterval(v.ScoreInterval),
		Difference: optionalPoints(v.Difference), DifferenceInterval: optionalInterval(v.DifferenceInterval),
		Verdict: string(v.Verdict), Explanation: v.Message,
	}
}

// timeline merges the status timestamps with the events, oldest first
// (status before events at the same instant).
func timeline(exp *cxv1.CXExperiment, events []eventsv1.Event) []TimelineEntry {
	st := &exp.Status
	run := max(st.Run, 1)
	var out []TimelineEntry
	add := func(t time.Time, reason, format string, args ...any) {
		out = append(out, TimelineEntry{At: t.UTC(), Source: "status", Reason: reason, Message: fmt.Sprintf(format, args...)})
	}
	if st.StartedAt != nil {
		add(st.StartedAt.Time, "RunStarted", "run %d started", run)
	}
	for _, rb := range st.Rollbacks {
		add(rb.At.Time, "VariantRolledBack", "%s rolled back in %s at step %d after %s responses (%s)", rb.Variant, rb.Segment, rb.Step, thousands(rb.Responses), rb.Reason)
	}
	if st.StepStartedAt != nil && st.CurrentStep > 0 {
		add(st.StepStartedAt.Time, "StepStarted", "step %d/%d started (weight %d%%)", st.CurrentStep, len(exp.Spec.Steps), st.StepWeight)
	}
	if st.PausedAt != nil {
		add(st.PausedAt.Time, "Paused", "paused at step %d/%d", st.CurrentStep, len(exp.Spec.Steps))
	}
	if st.CompletedAt != nil {
		add(st.CompletedAt.Time, "RunEnded", "run %d ended: %s", run, phaseOf(exp))
	}
	evs := append([]eventsv1.Event(nil), events...)
	sortEvents(evs)
	for i := range evs {
		e := &evs[i]
		out = append(out, TimelineEntry{At: eventTime(e).UTC(), Source: "event", Type: e.Type, Reason: e.Reason, Message: oneLine(e.Note)})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	if out == nil {
		out = []TimelineEntry{}
	}
	return out
}

// segmentDecisions says what each segment serves.
func segmentDecisions(exp *cxv1.CXExperiment) []SegmentDecision {
	control := ""
	if ctl := exp.Spec.ControlVariant(); ctl != nil {
		control = ctl.Name
	}
	rolledBack := map[string][]string{}
	for _, rb := range exp.Status.Rollbacks {
		rolledBack[rb.Segment] = append(rolledBack[rb.Segment], fmt.Sprintf("%s rolled back (%s)", rb.Variant, rb.Reason))
	}
	out := make([]SegmentDecision, 0, len(exp.Status.Segments))
	for _, seg := range exp.Status.Segments {
		d := SegmentDecision{Segment: seg.Name, Serves: control}
		var active []string
		for _, v := range seg.Variants {
			if v.State == cxv1.StateActive {
				active = append(active, fmt.Sprintf("%s %s", v.Name, orDash(string(v.Verdict))))
			}
		}
		switch {
		case seg.Promoted != "":
			d.Serves, d.Promoted = seg.Promoted, true
			d.Why = "promoted"
			if v := findVariant(seg, seg.Promoted); v != nil && v.Verdict != "" {
				d.Why = fmt.Sprintf("promoted: %s, %s", v.Verdict, scoreVsControl(seg, v))
			}
		case len(active) > 0 && !exp.Status.Phase.Terminal():
			d.Why = "undecided: " + strings.Join(active, ", ")
		case len(rolledBack[seg.Name]) > 0:
			d.Why = "kept the control: " + strings.Join(rolledBack[seg.Name], ", ")
		default:
			d.Why = "kept the control"
		}
		out = append(out, d)
	}
	return out
}

func findVariant(seg cxv1.SegmentStatus, name string) *cxv1.VariantStatus {
	for i := range seg.Variants {
		if seg.Variants[i].Name == name {
			return &seg.Variants[i]
		}
	}
	return nil
}

// scoreVsControl is "score 87.1 vs control 86.0 (difference 1.1 [-2.3, 4.5])".
func scoreVsControl(seg cxv1.SegmentStatus, v *cxv1.VariantStatus) string {
	ctl := ""
	for _, x := range seg.Variants {
		if x.State == cxv1.StateControl {
			ctl = x.Score
		}
	}
	return fmt.Sprintf("score %s vs control %s (difference %s)", orDash(v.Score), orDash(ctl), diffWithInterval(v.Difference, v.DifferenceInterval))
}

func decisionSummary(exp *cxv1.CXExperiment, segs []SegmentDecision) string {
	st := &exp.Status
	var what string
	switch phase(exp) {
	case cxv1.PhaseSucceeded:
		what = "Succeeded"
	case cxv1.PhaseRolledBack:
		what = "Rolled back"
	case cxv1.PhaseFailed:
		what = "Failed"
		if cond := findCondition(st.Conditions, cxv1.ConditionReady); cond != nil && cond.Message != "" {
			what += " (" + cond.Reason + ": " + cond.Message + ")"
		}
	default:
		what = fmt.Sprintf("Not decided yet (%s, step %d/%d)", phaseOf(exp), st.CurrentStep, len(exp.Spec.Steps))
	}
	var parts []string
	for _, d := range segs {
		if d.Promoted {
			parts = append(parts, fmt.Sprintf("%s serves %s", d.Segment, d.Serves))
		} else if st.Phase.Terminal() {
			parts = append(parts, fmt.Sprintf("%s keeps the control", d.Segment))
		}
	}
	if len(parts) == 0 {
		return what + "."
	}
	return what + ": " + strings.Join(parts, "; ") + "."
}

// RenderReportMarkdown writes the report as Markdown.
func RenderReportMarkdown(w io.Writer, r Report) error {
	p := &printer{w: w}
	mdSummary(p, r)
	mdVariants(p, r)
	mdSettings(p, r.Settings)
	mdTimeline(p, r.Timeline)
	mdResults(p, r.Results)
	mdDecision(p, r.Decision)
	return p.err
}

func mdSummary(p *printer, r Report) {
	e := r.Experiment
	p.printf("# Experiment report: %s/%s (run %d)\n\n", e.Namespace, e.Name, e.Run)
	p.printf("- **Hypothesis:** %s\n", mdText(orDash(e.Hypothesis)))
	p.printf("- **Touchpoint:** %s\n", mdText(orDash(e.Touchpoint)))
	p.printf("- **Outcome:** %s\n", mdText(r.Decision.Summary))
	p.printf("- **Phase:** %s, step %d/%d\n", e.Phase, e.CurrentStep, e.Steps)
	if e.StartedAt != nil {
		p.printf("- **Started:** %s\n", timestamp(*e.StartedAt))
	}
	if e.CompletedAt != nil {
		p.printf("- **Ended:** %s (after %s)\n", timestamp(*e.CompletedAt), runLength(e))
	}
	p.printf("- **Report generated:** %s\n", timestamp(r.GeneratedAt))
}

func mdVariants(p *printer, r Report) {
	p.printf("\n## Variants\n\n| Variant | Role | Served by |\n|---|---|---|\n")
	for _, v := range r.Variants {
		role := "variant"
		if v.Control {
			role = "control"
		}
		by := "-"
		switch {
		case v.Service != "":
			by = "Service " + v.Service
		case v.Deployment != "":
			by = "Deployment " + v.Deployment
		}
		p.printf("| %s | %s | %s |\n", mdCell(v.Name), role, mdCell(by))
	}
	p.printf("\n**Segments:** %s\n", mdText(strings.Join(r.Segments, ", ")))
}

func mdSettings(p *printer, s ReportSettings) {
	p.printf("\n## Settings\n\n| Setting | Value |\n|---|---|\n")
	p.printf("| Metric | %s |\n", mdCell(reportScale(s)))
	p.printf("| Max drop | %s points below the control |\n", points(s.MaxDrop))
	if s.Minimum != nil {
		p.printf("| Minimum | %s points |\n", points(*s.Minimum))
	}
	p.printf("| Confidence | %s%% (always-valid intervals) |\n", points(s.Confidence))
	p.printf("| Min responses | %s per variant and segment |\n", thousands(s.MinResponses))
	p.printf("| Source | %s |\n", mdCell(s.Source))
	steps := make([]string, 0, len(s.Steps))
	for _, st := range s.Steps {
		d := "min " + st.MinDuration
		if st.MaxDuration != "" {
			d += ", max " + st.MaxDuration
		}
		steps = append(steps, fmt.Sprintf("%d%% (%s)", st.Weight, d))
	}
	p.printf("| Steps | %s |\n", mdCell(strings.Join(steps, " → ")))
	p.printf("| Promotion | %s |\n", s.Promotion)
	p.printf("| On inconclusive | %s |\n", s.OnInconclusive)
	if len(s.Guardrails) > 0 {
		p.printf("| Guardrails | %s |\n", mdCell(strings.Join(s.Guardrails, ", ")))
	}
}

func mdTimeline(p *printer, timeline []TimelineEntry) {
	p.printf("\n## Timeline\n\n")
	if len(timeline) == 0 {
		p.printf("Nothing happened yet.\n")
		return
	}
	p.printf("| Time (UTC) | Source | Reason | What |\n|---|---|---|---|\n")
	for _, t := range timeline {
		src := t.Source
		if t.Type == "Warning" {
			src += " (Warning)"
		}
		p.printf("| %s | %s | %s | %s |\n", timestamp(t.At), src, mdCell(t.Reason), mdCell(t.Message))
	}
}

func mdResults(p *printer, results []SegmentResult) {
	p.printf("\n## Results\n")
	if len(results) == 0 {
		p.printf("\nNo measurements yet.\n")
	}
	for _, seg := range results {
		p.printf("\n### Segment %s\n\n", mdText(seg.Segment))
		p.printf("| Variant | State | Weight | Responses | Share | Score | Difference | Verdict |\n|---|---|---:|---:|---:|---|---|---|\n")
		for _, v := range seg.Variants {
			p.printf("| %s | %s | %d%% | %s | %s | %s | %s | %s |\n", mdCell(v.Name), v.State, v.Weight, thousands(v.Responses),
				mdShare(v.Share), mdScore(v.Score, v.ScoreInterval), mdDiff(v.Difference, v.DifferenceInterval), orDash(v.Verdict))
		}
		var notes []string
		for _, v := range seg.Variants {
			if v.Explanation != "" && !v.Control {
				notes = append(notes, fmt.Sprintf("- %s: %s", mdText(v.Name), mdText(v.Explanation)))
			}
		}
		if len(notes) > 0 {
			p.printf("\n%s\n", strings.Join(notes, "\n"))
		}
	}
}

func mdDecision(p *printer, d Decision) {
	p.printf("\n## Decision\n\n%s\n", mdText(d.Summary))
	if len(d.Segments) > 0 {
		p.printf("\n| Segment | Serves | Why |\n|---|---|---|\n")
		for _, s := range d.Segments {
			serves := s.Serves + " (control)"
			if s.Promoted {
				serves = s.Serves + " (promoted)"
			}
			p.printf("| %s | %s | %s |\n", mdCell(s.Segment), mdCell(serves), mdCell(s.Why))
		}
	}
	p.printf("\n### Rollbacks\n\n")
	if len(d.Rollbacks) == 0 {
		p.printf("None.\n")
		return
	}
	p.printf("| Segment | Variant | Reason | Step | Responses | At (UTC) | Evidence |\n|---|---|---|---:|---:|---|---|\n")
	for _, rb := range d.Rollbacks {
		p.printf("| %s | %s | %s | %s | %s | %s | %s |\n", mdCell(rb.Segment), mdCell(rb.Variant), rb.Reason,
			stepNumber(rb.Step), thousands(rb.Responses), timestamp(rb.At), mdCell(orDash(rb.Evidence)))
	}
}

func runLength(e ReportExperiment) string {
	if e.StartedAt == nil || e.CompletedAt == nil {
		return "-"
	}
	return age(*e.CompletedAt, *e.StartedAt)
}

func reportScale(s ReportSettings) string {
	if s.Metric == string(cxv1.MetricNPS) {
		return "NPS on 0..10 (promoters 9-10, detractors 0-6)"
	}
	if s.Metric == "" {
		return "-"
	}
	return fmt.Sprintf("%s on %d..%d (satisfied: %d or above)", s.Metric, s.ScaleMin, s.ScaleMax, s.SatisfiedAtOrAbove)
}

func mdShare(f *float64) string {
	if f == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", *f)
}

func mdScore(f *float64, iv *Interval) string {
	if f == nil {
		return "-"
	}
	if iv == nil {
		return fmt.Sprintf("%.1f", *f)
	}
	return fmt.Sprintf("%.1f ± %.1f [%.1f, %.1f]", *f, (iv.Upper-iv.Lower)/2, iv.Lower, iv.Upper)
}

func mdDiff(f *float64, iv *Interval) string {
	if f == nil {
		return "-"
	}
	if iv == nil {
		return fmt.Sprintf("%.1f", *f)
	}
	return fmt.Sprintf("%.1f [%.1f, %.1f]", *f, iv.Lower, iv.Upper)
}

// mdText keeps user text on one line.
func mdText(s string) string { return oneLine(s) }

// mdCell makes text safe inside a Markdown table cell.
func mdCell(s string) string { return strings.ReplaceAll(oneLine(s), "|", `\|`) }
