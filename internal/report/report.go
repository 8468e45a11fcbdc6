// Package report renders an experiment's report as one self-contained HTML
// file: the hypothesis, touchpoint and decision; per segment the
// difference's confidence sequence over time against -maxDrop (and the
// floor), the weights and the responses over time; the score distribution
// per variant; a table of the figures behind each chart; and the method in
// plain words. Charts are drawn with gonum.org/v1/plot as inline SVG; the
// page has no script and loads nothing from the network.
package report

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/history"
)

// Input is what the report is made of.
type Input struct {
	// Experiment is the experiment, status included.
	Experiment *cxv1.CXExperiment
	// History is the run's history (the <experiment>-history ConfigMap);
	// nil when none was recorded: the report then has no charts over time
	// and says so.
	History *history.History
	// Tally is the run's ResponseTally, for the score distributions; nil
	// when there is none (a Prometheus source): the report says so.
	Tally *cxv1.ResponseTally
	// Decision is the decision in one sentence (kubectl cx report's summary).
	Decision string
	// Now is when the report is made.
	Now time.Time
}

// WriteHTML writes the report page.
func WriteHTML(w io.Writer, in Input) error {
	if in.Experiment == nil {
		return fmt.Errorf("report: no experiment")
	}
	pg, err := build(in)
	if err != nil {
		return err
	}
	return page.Execute(w, pg)
}

type pageData struct {
	Title, Namespace, Name, Hypothesis, Touchpoint, Phase, Decision, Generated string
	Run                                                                        int32
	Settings                                                                   string
	Rollbacks                                                                  []rollbackRow
	Segments                                                                   []segmentSection
	NoHistory                                                                  bool
	Distribution                                                               *chartSection
	NoDistribution                                                             string
	Method                                                                     []string
}

type rollbackRow struct{ Segment, Variant, Reason, At, Evidence string }

type segmentSection struct {
	Name     string
	Decision string
	Charts   []chartSection
}

type chartSection struct {
	ID      string
	Heading string
	SVG     template.HTML
	Table   table
}

type table struct {
	Caption string
	Head    []string
	Rows    [][]string
}

func build(in Input) (*pageData, error) {
	exp := in.Experiment
	settings, err := exp.JudgedSettings()
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	pg := &pageData{
		Title: exp.Name, Namespace: exp.Namespace, Name: exp.Name, Hypothesis: exp.Spec.Hypothesis,
		Touchpoint: exp.Spec.Touchpoint, Phase: string(exp.Status.Phase), Decision: in.Decision,
		Generated: in.Now.UTC().Format(time.RFC3339), Run: max(exp.Status.Run, 1),
		Settings: settingsLine(settings), Method: method(settings),
	}
	if pg.Phase == "" {
		pg.Phase = string(cxv1.PhasePending)
	}
	for _, rb := range exp.Status.Rollbacks {
		pg.Rollbacks = append(pg.Rollbacks, rollbackRow{Segment: rb.Segment, Variant: rb.Variant, Reason: string(rb.Reason),
			At: rb.At.UTC().Format(time.RFC3339), Evidence: rb.Evidence})
	}
	h := in.History
	if h != nil && h.Run != exp.Status.Run {
		h = nil // a history of another run says nothing about this one
	}
	pg.NoHistory = h == nil || len(h.Series) == 0
	variants := variantOrder(&exp.Spec)
	for i, seg := range exp.Spec.SegmentNames() {
		sec := segmentSection{Name: seg, Decision: segmentDecision(exp, seg)}
		if !pg.NoHistory {
			charts, err := segmentCharts(fmt.Sprintf("segment-%d", i+1), seg, variants, h, exp, settings)
			if err != nil {
				return nil, err
			}
			sec.Charts = charts
		}
		pg.Segments = append(pg.Segments, sec)
	}
	if in.Tally == nil || in.Tally.Spec.Run != exp.Status.Run {
		pg.NoDistribution = "No response tally of this run was found (the collector keeps one; a Prometheus source does not), so the score distribution is not shown."
	} else {
		c, err := distributionChart(variants, in.Tally, settings)
		if err != nil {
			return nil, err
		}
		pg.Distribution = c
	}
	return pg, nil
}

// variantOrder lists the variants, the control first.
func variantOrder(spec *cxv1.CXExperimentSpec) []string {
	var out []string
	if c := spec.ControlVariant(); c != nil {
		out = append(out, c.Name)
	}
	for _, v := range spec.Variants {
		if !v.Control {
			out = append(out, v.Name)
		}
	}
	return out
}

func settingsLine(s cxv1.SatisfactionSettings) string {
	out := fmt.Sprintf("%s on %d..%d, a variant may be at most %s points below the control, confidence %s%%, at least %d responses per variant before any verdict",
		s.Metric, s.ScoreMin, s.ScoreMax, num(s.MaxDrop), num(s.Confidence*100), s.MinResponses)
	if s.Minimum != nil {
		out += ", floor " + num(*s.Minimum) + " points"
	}
	return out + "."
}

func method(s cxv1.SatisfactionSettings) []string {
	alpha := num((1 - s.Confidence) * 100)
	return []string{
		"Rapport judges every variant against the control in each segment, with a test that stays valid however often it is looked at: the evidence is checked after every response, and stopping as soon as it is clear does not inflate the error rates.",
		"Each chart of the difference shows its confidence sequence: at every moment, the range of differences the evidence still allows. A variant is rolled back once the whole range lies below -" + num(s.MaxDrop) + " points (the tolerated drop), and counts as no worse than the control once the whole range lies above it.",
		"Responses are compared within periods of constant weights (allocation epochs), so a change of satisfaction that all variants share while the traffic ramps up is not taken for a difference between them.",
		"The guarantee, with an error budget of " + alpha + "%: the chance of ever advancing or promoting a variant that is in truth more than " + num(s.MaxDrop) + " points worse, anywhere in the experiment, is at most " + alpha + "%; in each segment, the chance of ever rolling back a variant that is in truth within the tolerated drop is at most " + alpha + "%.",
		"A segment whose responses per variant do not match its weights (a sample-ratio mismatch) is held at its step. The run is judged by the settings it started with.",
	}
}

func segmentDecision(exp *cxv1.CXExperiment, seg string) string {
	var parts []string
	for _, rb := range exp.Status.Rollbacks {
		if rb.Segment == seg {
			parts = append(parts, fmt.Sprintf("%s rolled back (%s) at %s", rb.Variant, rb.Reason, rb.At.UTC().Format(time.RFC3339)))
		}
	}
	for _, s := range exp.Status.Segments {
		if s.Name == seg && s.Promoted != "" {
			parts = append(parts, "serves "+s.Promoted)
		}
	}
	if len(parts) == 0 {
		return "No decision recorded in this segment yet."
	}
	return strings.Join(parts, "; ") + "."
}

// decisionMoment is when the variant's fate in the segment was decided: its
// rollback, or the run's end when the segment was promoted.
func decisionMoment(exp *cxv1.CXExperiment, seg, variant string) (time.Time, string, bool) {
	for _, rb := range exp.Status.Rollbacks {
		if rb.Segment == seg && rb.Variant == variant {
			return rb.At.Time, "rollback of " + variant, true
		}
	}
	for _, s := range exp.Status.Segments {
		if s.Name == seg && s.Promoted != "" && exp.Status.CompletedAt != nil {
			return exp.Status.CompletedAt.Time, "promotion of " + s.Promoted, true
		}
	}
	return time.Time{}, "", false
}

// num formats a figure with at most two decimals: 5, 2.5, 99.9.
func num(x float64) string { return strconv.FormatFloat(math.Round(x*100)/100, 'f', -1, 64) }

func pts(x *float64) string {
	if x == nil {
		return "–"
	}
	return cxv1.FormatPoints(*x)
}

func esc(s string) string { return template.HTMLEscapeString(s) }

// DifferenceSVG draws, for the live dashboard, the same chart as the
// report's first one for a segment: each variant's difference to the
// control over time with its confidence sequence, against −maxDrop, the
// decision marked at the time status records it. Empty when the history
// has no series of the segment.
func DifferenceSVG(exp *cxv1.CXExperiment, h *history.History, seg string) (template.HTML, error) {
	if h == nil {
		return "", nil
	}
	s, err := exp.JudgedSettings()
	if err != nil {
		return "", err
	}
	variants := variantOrder(&exp.Spec)
	found := false
	for _, v := range variants[1:] {
		found = found || h.Find(seg, v) != nil
	}
	if !found {
		return "", nil
	}
	c, err := differenceChart("live-"+seg+"-difference", seg, variants, h, exp, s)
	if err != nil {
		return "", err
	}
	return c.SVG, nil
}
