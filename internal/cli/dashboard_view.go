package cli

import (
	"fmt"
	"html/template"
	"net/url"
	"time"

	eventsv1 "k8s.io/api/events/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/history"
	"github.com/rapport-dev/rapport/internal/report"
)

// The dashboard's pages are rendered from the views below, built by pure
// functions of the objects and the clock; the templates only lay them out.
// Tones reuse the colours of the terminal views (see toneOf), so that a
// verdict reads the same in `kubectl cx status` and in the browser.

// listView is the page of experiments.
type listView struct {
	// Scope is "all namespaces" or "namespace NS".
	Scope string
	Rows  []listRow
}

// listRow is one experiment of the list.
type listRow struct {
	Namespace, Name, URL string
	Phase, PhaseTone     string
	Step, Weight, Age    string
	Segments             []segmentBadge
	Waiting, Touchpoint  string
}

// segmentBadge is a segment of the list with the verdict of each variant.
type segmentBadge struct {
	Name     string
	Variants []variantBadge
}

// variantBadge is "one-page NonInferior", toned by its verdict (or its state
// when rolled back or promoted).
type variantBadge struct {
	Name, Verdict, Tone string
}

// experimentView is the experiment page; everything but the shell is
// replaced on each live update.
type experimentView struct {
	Namespace, Name, URL, LiveURL string
	Hypothesis, Touchpoint        string
	Phase, PhaseTone              string
	Run, Step, JudgedOn, Traffic  string
	Measured, Waiting, Settings   string
	Segments                      []segmentView
	Rollbacks                     []rollbackView
	Conditions                    []conditionView
	Events                        []eventView
	Actions                       []actionButton
}

type segmentView struct {
	Name, Head, Mismatch string
	Variants             []variantRow
	Chart                template.HTML
	// OverTime: Chart is the report's chart over time (from the history).
	OverTime bool
}

type variantRow struct {
	Name, State, StateTone, Weight, Responses, Share string
	Score, Difference, Verdict, VerdictTone, Message string
}

type rollbackView struct {
	Segment, Variant, Reason, Step, Responses, At, Evidence string
}

type conditionView struct {
	Type, Status, Reason, Age, Message string
}

type eventView struct {
	Age, Type, Reason, Note string
	Warning                 bool
}

// actionButton is a manual action offered on the page: enabled when the
// action would change something, else disabled with the reason (the same
// refuse and noop rules as kubectl cx pause/resume/promote/abort/retry).
type actionButton struct {
	Name, Label, Help, Confirm string
	Disabled                   bool
	Why                        string
}

// toneOf maps a terminal colour to the CSS class of the dashboard.
func toneOf(ansi string) string {
	switch ansi {
	case ansiGreen:
		return "ok"
	case ansiRed:
		return "bad"
	case ansiYellow:
		return "warn"
	case ansiCyan:
		return "info"
	case ansiDim:
		return "dim"
	}
	return ""
}

// experimentPath is the URL path of an experiment's page.
func experimentPath(ns, name string) string {
	return "/experiments/" + url.PathEscape(ns) + "/" + url.PathEscape(name)
}

// buildListView is the list page of items (sorted by namespace and name).
func buildListView(items []cxv1.CXExperiment, namespace string, now time.Time) listView {
	v := listView{Scope: "all namespaces"}
	if namespace != "" {
		v.Scope = "namespace " + namespace
	}
	sorted := append([]cxv1.CXExperiment(nil), items...)
	sortExperiments(sorted)
	for i := range sorted {
		e := &sorted[i]
		row := listRow{
			Namespace: e.Namespace, Name: e.Name, URL: experimentPath(e.Namespace, e.Name),
			Phase: phaseOf(e), PhaseTone: toneOf(phaseColors[phase(e)]),
			Step: stepOf(e), Weight: weightOf(e), Age: age(now, e.CreationTimestamp.Time),
			Touchpoint: orDash(e.Spec.Touchpoint), Waiting: waitingMessage(&e.Status),
		}
		row.Segments = segmentBadges(e)
		v.Rows = append(v.Rows, row)
	}
	return v
}

// segmentBadges are the verdicts of each segment's variants; segments
// without measurements yet have no variants.
func segmentBadges(e *cxv1.CXExperiment) []segmentBadge {
	if len(e.Status.Segments) == 0 {
		names := e.Spec.SegmentNames()
		out := make([]segmentBadge, 0, len(names))
		for _, n := range names {
			out = append(out, segmentBadge{Name: n})
		}
		return out
	}
	out := make([]segmentBadge, 0, len(e.Status.Segments))
	for _, s := range e.Status.Segments {
		b := segmentBadge{Name: s.Name}
		for _, vs := range s.Variants {
			if vs.State == cxv1.StateControl {
				continue
			}
			b.Variants = append(b.Variants, variantBadge{Name: vs.Name, Verdict: badgeText(vs), Tone: badgeTone(vs)})
		}
		out = append(out, b)
	}
	return out
}

// badgeText is the verdict, or the state when it says more (rolled back,
// promoted, retired).
func badgeText(vs cxv1.VariantStatus) string {
	switch vs.State {
	case cxv1.StateRolledBack, cxv1.StatePromoted, cxv1.StateRetired:
		return string(vs.State)
	}
	return orDash(string(vs.Verdict))
}

func badgeTone(vs cxv1.VariantStatus) string {
	if t := toneOf(stateColors[vs.State]); t != "" {
		return t
	}
	return toneOf(verdictColors[vs.Verdict])
}

// buildExperimentView is the experiment page of exp with its latest events.
// buildExperimentView is the experiment page. h, the run's history (nil
// when there is none yet), gives each segment the report's chart over time;
// without it the chart shows the current intervals.
func buildExperimentView(exp *cxv1.CXExperiment, h *history.History, events []eventsv1.Event, now time.Time) experimentView {
	st := &exp.Status
	path := experimentPath(exp.Namespace, exp.Name)
	v := experimentView{
		Namespace: exp.Namespace, Name: exp.Name, URL: path, LiveURL: path + "/live",
		Hypothesis: orDash(exp.Spec.Hypothesis), Touchpoint: orDash(exp.Spec.Touchpoint),
		Phase: phaseOf(exp), PhaseTone: toneOf(phaseColors[phase(exp)]),
		Run: runLine(exp, now), Step: StepLine(exp, now), JudgedOn: settingsLine(exp), Traffic: trafficLine(exp),
		Waiting: waitingMessage(st), Actions: actionButtons(exp),
	}
	if st.MeasuredAt != nil {
		v.Measured = age(now, st.MeasuredAt.Time) + " ago"
	}
	if changed, diff := exp.SettingsChanged(); changed && !st.Phase.Terminal() {
		v.Settings = "spec.satisfaction changed during this run (" + diff + "); it applies to the next run (retry)"
	}
	maxDrop := 0.0
	if s, err := exp.JudgedSettings(); err == nil {
		maxDrop = s.MaxDrop
	}
	for _, seg := range st.Segments {
		sv := buildSegmentView(seg, maxDrop)
		if svg, err := report.DifferenceSVG(exp, h, seg.Name); err == nil && svg != "" {
			sv.Chart, sv.OverTime = svg, true
		}
		v.Segments = append(v.Segments, sv)
	}
	for _, r := range st.Rollbacks {
		v.Rollbacks = append(v.Rollbacks, rollbackView{
			Segment: r.Segment, Variant: r.Variant, Reason: string(r.Reason), Step: stepNumber(r.Step),
			Responses: thousands(r.Responses), At: timestamp(r.At.Time) + " (" + age(now, r.At.Time) + " ago)", Evidence: r.Evidence,
		})
	}
	for _, cond := range st.Conditions {
		v.Conditions = append(v.Conditions, conditionView{
			Type: cond.Type, Status: string(cond.Status), Reason: cond.Reason, Age: age(now, cond.LastTransitionTime.Time), Message: cond.Message,
		})
	}
	for i := range events {
		e := &events[i]
		v.Events = append(v.Events, eventView{Age: age(now, eventTime(e)), Type: e.Type, Reason: e.Reason, Note: oneLine(e.Note), Warning: e.Type == "Warning"})
	}
	return v
}

func buildSegmentView(seg cxv1.SegmentStatus, maxDrop float64) segmentView {
	sv := segmentView{Name: seg.Name, Head: "Segment " + seg.Name}
	if seg.Promoted != "" {
		sv.Head += " (promoted: " + seg.Promoted + ")"
	}
	if seg.Epoch > 0 {
		sv.Head += fmt.Sprintf(" (epoch %d)", seg.Epoch)
	}
	if sr := seg.SampleRatio; sr != nil && sr.Mismatch {
		sv.Mismatch = fmt.Sprintf("Sample-ratio mismatch: %s (epoch %d, evidence %s): it cannot advance or be promoted until the shares match", sr.Shares, sr.Epoch, sr.Evidence)
	}
	for _, vs := range seg.Variants {
		row := variantRow{
			Name: vs.Name, State: string(vs.State), StateTone: toneOf(stateColors[vs.State]),
			Weight: fmt.Sprintf("%d%%", vs.Weight), Responses: thousands(vs.Responses), Share: share(vs.RealizedShare),
			Score: pm(vs.Score, vs.ScoreInterval), Difference: diffWithInterval(vs.Difference, vs.DifferenceInterval),
			Verdict: orDash(string(vs.Verdict)), VerdictTone: toneOf(verdictColors[vs.Verdict]),
		}
		if vs.State != cxv1.StateControl {
			row.Message = vs.Message
		}
		sv.Variants = append(sv.Variants, row)
	}
	sv.Chart = segmentChart(seg, maxDrop)
	return sv
}

// actionButtons are the manual actions with whether each applies to exp now.
func actionButtons(exp *cxv1.CXExperiment) []actionButton {
	out := make([]actionButton, 0, len(actions))
	for _, a := range actions {
		b := actionButton{
			Name: a.name, Label: labelOf(a.name), Help: a.short,
			Confirm: fmt.Sprintf("%s %s? %s.", labelOf(a.name), ref(exp), a.short),
		}
		if why := a.refuse(exp); why != "" {
			b.Disabled, b.Why = true, "Not now: "+why
		} else if a.noop != nil {
			if why := a.noop(exp); why != "" {
				b.Disabled, b.Why = true, "Nothing to do: "+why
			}
		}
		out = append(out, b)
	}
	return out
}

// labelOf capitalises an action's name for its button: "pause" → "Pause".
func labelOf(name string) string {
	if name == "" {
		return ""
	}
	return string(name[0]-'a'+'A') + name[1:]
}

// findAction returns the manual action called name.
func findAction(name string) (action, bool) {
	for _, a := range actions {
		if a.name == name {
			return a, true
		}
	}
	return action{}, false
}
