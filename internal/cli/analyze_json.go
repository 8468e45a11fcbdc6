package cli

import (
	"github.com/rapport-dev/rapport/internal/analysis"
)

// The kinds of `kubectl cx analyze -o json` (apiVersion ReportAPIVersion).
const (
	AnalysisKind = "AnalysisResult"
	PlanKind     = "AnalysisPlan"
)

// AnalysisDocument is `kubectl cx analyze -o json`: the settings, the
// control and each variant's verdict, in points, rounded to 0.001.
type AnalysisDocument struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Settings   AnalysisSettings `json:"settings"`
	Control    AnalysisArm      `json:"control"`
	Variants   []AnalysisArm    `json:"variants"`
}

// AnalysisArm is the control or a variant. Difference, its interval, the
// verdict and the explanation are the variants' only.
type AnalysisArm struct {
	Name               string    `json:"name"`
	Responses          int64     `json:"responses"`
	Score              float64   `json:"score"`
	ScoreInterval      Interval  `json:"scoreInterval"`
	Difference         *float64  `json:"difference,omitempty"`
	DifferenceInterval *Interval `json:"differenceInterval,omitempty"`
	Verdict            string    `json:"verdict,omitempty"`
	Explanation        string    `json:"explanation,omitempty"`
}

// PlanDocument is `kubectl cx analyze --plan -o json`.
type PlanDocument struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Settings   AnalysisSettings `json:"settings"`
	Baseline   float64          `json:"baseline"`
	// Power is the fixed-horizon comparison's power, in percent.
	Power float64   `json:"power"`
	Rows  []PlanDoc `json:"rows"`
}

// PlanDoc is one true drop at one step weight of a plan.
type PlanDoc struct {
	Drop float64 `json:"drop"`
	// Weight is the percentage of the segment each variant receives.
	Weight       int32   `json:"weight"`
	VariantScore float64 `json:"variantScore"`
	Verdict      string  `json:"verdict"`
	// Median and P90 are the responses after which half and nine in ten
	// runs reached the verdict, looking every 10 responses (absent when
	// fewer runs reached it within the planner's horizon).
	Median *PlanResponses `json:"median,omitempty"`
	P90    *PlanResponses `json:"p90,omitempty"`
	// Reached is the percentage of simulated runs that reached the verdict.
	Reached float64 `json:"reached"`
	// FixedHorizonSegmentResponses is the single-look sample of the segment.
	FixedHorizonSegmentResponses int64 `json:"fixedHorizonSegmentResponses"`
}

// PlanResponses are responses of the segment, the variant and the control.
type PlanResponses struct {
	Segment int64 `json:"segment"`
	Variant int64 `json:"variant"`
	Control int64 `json:"control"`
}

func planResponses(p analysis.PlanPoint, reached bool) *PlanResponses {
	if !reached {
		return nil
	}
	return &PlanResponses{Segment: p.Segment, Variant: p.Variant, Control: p.Control}
}

func analysisSettings(cfg analysis.Config) AnalysisSettings {
	s := AnalysisSettings{Metric: string(cfg.Metric), ScaleMin: cfg.ScaleMin, ScaleMax: cfg.ScaleMax, MaxDrop: cfg.MaxDrop,
		Confidence: r3(cfg.Confidence * 100), MinResponses: cfg.MinResponses}
	if cfg.Metric == analysis.CSAT {
		s.SatisfiedAtOrAbove = cfg.SatisfiedAtOrAbove
	}
	if cfg.Minimum != nil {
		m := *cfg.Minimum
		s.Minimum = &m
	}
	return s
}

// NewAnalysisDocument turns a result into its JSON document.
func NewAnalysisDocument(r AnalysisResult) AnalysisDocument {
	d := AnalysisDocument{
		APIVersion: ReportAPIVersion, Kind: AnalysisKind, Settings: analysisSettings(r.Config),
		Control: AnalysisArm{Name: r.Control.Name, Responses: r.Control.Responses, Score: r3(r.Control.Score), ScoreInterval: r3i(r.Control.Interval)},
	}
	d.Variants = make([]AnalysisArm, 0, len(r.Assessments))
	for _, a := range r.Assessments {
		diff, di := r3(a.Difference), r3i(a.DifferenceInterval)
		d.Variants = append(d.Variants, AnalysisArm{
			Name: a.Variant, Responses: a.Responses, Score: r3(a.Score), ScoreInterval: r3i(a.ScoreInterval),
			Difference: &diff, DifferenceInterval: &di, Verdict: string(a.Verdict), Explanation: a.Explanation,
		})
	}
	return d
}

// NewPlanDocument turns a plan into its JSON document.
func NewPlanDocument(p PlanResult) PlanDocument {
	d := PlanDocument{APIVersion: ReportAPIVersion, Kind: PlanKind, Settings: analysisSettings(p.Config), Baseline: p.Baseline, Power: r3(p.Power * 100), Rows: []PlanDoc{}}
	for _, r := range p.Rows {
		d.Rows = append(d.Rows, PlanDoc{Drop: r.Drop, Weight: r.Weight, VariantScore: r3(p.Baseline - r.Drop), Verdict: string(r.Verdict),
			Median: planResponses(r.Median, r.Reached >= 0.5), P90: planResponses(r.P90, r.Reached >= 0.9),
			Reached: r3(r.Reached * 100), FixedHorizonSegmentResponses: r.FixedHorizon})
	}
	return d
}
