package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/analysis"
)

// CountsFile is the document `kubectl cx analyze --file` reads. Every
// setting is optional (the defaults are those of a CXExperiment) and a flag
// given on the command line wins over the file. Counts are the numbers of
// responses per score, from the lowest score of the scale upwards: 1..scaleMax
// for CSAT (5 numbers on the default 1..5 scale), 0..10 for NPS (11 numbers).
//
//	{
//	  "metric": "CSAT",
//	  "scaleMax": 5,
//	  "satisfiedAtOrAbove": 4,
//	  "maxDrop": 3,
//	  "minimum": 70,
//	  "confidence": 95,
//	  "minResponses": 100,
//	  "control":  {"name": "control",  "counts": [3, 4, 10, 40, 43]},
//	  "variants": [{"name": "one-page", "counts": [5, 6, 12, 40, 37]}]
//	}
type CountsFile struct {
	Metric             string      `json:"metric,omitempty"`
	ScaleMax           *int        `json:"scaleMax,omitempty"`
	SatisfiedAtOrAbove *int        `json:"satisfiedAtOrAbove,omitempty"`
	MaxDrop            *float64    `json:"maxDrop,omitempty"`
	Minimum            *float64    `json:"minimum,omitempty"`
	Confidence         *float64    `json:"confidence,omitempty"`
	MinResponses       *int64      `json:"minResponses,omitempty"`
	Control            *CountsArm  `json:"control,omitempty"`
	Variants           []CountsArm `json:"variants,omitempty"`
}

// CountsArm is one arm of a CountsFile.
type CountsArm struct {
	Name   string  `json:"name"`
	Counts []int64 `json:"counts"`
}

// analyzeFlags are the flags of analyze.
type analyzeFlags struct {
	metric       string
	scaleMax     int
	satisfiedAt  int
	maxDrop      float64
	minimum      float64
	confidence   float64
	minResponses int64
	control      string
	controlName  string
	variants     []string
	file         string
	plan         bool
	baseline     float64
	drops        []float64
	power        float64
	output       string
}

func newAnalyzeCommand(o *Options) *cobra.Command {
	f := &analyzeFlags{}
	cmd := &cobra.Command{
		Use:   "analyze",
		Short: "Run the decision engine offline on response counts, or plan a test (no cluster needed)",
		Long: `Judge variants against a control from counts of responses per score, with
the same decision engine and thresholds as the controller, without a cluster:
each variant's score ± the half-width of its always-valid interval, the
difference to the control with its interval, the verdict and its explanation.

Counts are numbers of responses per score, from the lowest score upwards:
1..scale-max for CSAT (5 numbers by default), 0..10 for NPS (11 numbers).
Give them as flags (--control and one --variant NAME=COUNTS per variant) or
in a JSON file (--file, "-" for stdin):

  {
    "metric": "CSAT", "scaleMax": 5, "satisfiedAtOrAbove": 4,
    "maxDrop": 3, "minimum": 70, "confidence": 95, "minResponses": 100,
    "control":  {"name": "control",  "counts": [3, 4, 10, 40, 43]},
    "variants": [{"name": "one-page", "counts": [5, 6, 12, 40, 37]}]
  }

Every setting of the file is optional; flags given on the command line win.

--plan answers "how many responses do we need?": for a control at --baseline
points and a variant --drop points lower (a list; default 0 and twice the
max drop, the two cases the margin is designed around), the responses per arm
at which Rapport, looking after every response, is expected to call the
verdict, next to the classical fixed-horizon sample size (a single look, 80%
power by default), which is only valid if nobody looks before the end.

-o json prints an AnalysisResult (or, with --plan, an AnalysisPlan) document,
apiVersion kubectl-cx.rapport.dev/v1, numbers in points rounded to 0.001.`,
		Example: `  # Judge one variant on a CSAT 1..5 survey
  kubectl cx analyze --metric CSAT --scale-max 5 \
    --control 3,4,10,40,43 --variant one-page=5,6,12,40,37

  # NPS, two variants, stricter settings
  kubectl cx analyze --metric NPS --max-drop 5 --confidence 99 \
    --control 10,2,3,5,5,10,15,40,60,150,200 \
    --variant a=12,3,3,6,6,12,16,42,60,140,190 --variant b=20,5,5,8,8,14,20,40,60,120,150

  # From a file
  kubectl cx analyze --file counts.json

  # Plan: responses per arm to catch a 5-point drop from a CSAT of 85
  kubectl cx analyze --plan --baseline 85 --drop 5

  # For a script
  kubectl cx analyze --file counts.json -o json | jq '.variants[] | {name, verdict}'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.runAnalyze(cmd.Flags(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.metric, "metric", "CSAT", "satisfaction metric: CSAT or NPS")
	fl.IntVar(&f.scaleMax, "scale-max", 5, "top of the CSAT scale 1..scale-max (2..10); NPS is always 0..10")
	fl.IntVar(&f.satisfiedAt, "satisfied-at", 0, "lowest CSAT score counted as satisfied (default scale-max - 1)")
	fl.Float64Var(&f.maxDrop, "max-drop", 3, "largest tolerated drop against the control, in points")
	fl.Float64Var(&f.minimum, "minimum", 0, "absolute floor for every variant, in points (unset: none)")
	fl.Float64Var(&f.confidence, "confidence", 95, "confidence level of the always-valid intervals, in percent")
	fl.Int64Var(&f.minResponses, "min-responses", 100, "responses needed per arm before any verdict")
	fl.StringVar(&f.control, "control", "", "the control's counts per score, comma-separated (e.g. 3,4,10,40,43)")
	fl.StringVar(&f.controlName, "control-name", "control", "the control's name in the output")
	fl.StringArrayVar(&f.variants, "variant", nil, "a variant as NAME=COUNTS (repeat for several variants)")
	fl.StringVarP(&f.file, "file", "f", "", `JSON file with settings and counts ("-" for stdin)`)
	fl.BoolVar(&f.plan, "plan", false, "plan a test: responses per arm needed to call a drop (needs --baseline)")
	fl.Float64Var(&f.baseline, "baseline", 0, "with --plan: the control's expected score, in points")
	fl.Float64SliceVar(&f.drops, "drop", nil, "with --plan: the variant's true drop below the control, in points (comma-separated list)")
	fl.Float64Var(&f.power, "power", 0.8, "with --plan: the power of the fixed-horizon comparison (0.5..0.99)")
	fl.StringVarP(&f.output, "output", "o", "", "output format: json (default: a table)")
	return cmd
}

func (o *Options) runAnalyze(fs *pflag.FlagSet, f *analyzeFlags) error {
	if err := outputFlag(f.output, "", "json"); err != nil {
		return err
	}
	var file CountsFile
	if f.file != "" {
		var err error
		if file, err = readCountsFile(o.In, f.file); err != nil {
			return err
		}
	}
	cfg, err := analyzeConfig(fs, f, &file)
	if err != nil {
		return err
	}
	if f.plan {
		if !fs.Changed("baseline") {
			return usageErrorf("--plan needs --baseline, the control's expected score in points (e.g. --baseline 85)")
		}
		if f.control != "" || len(f.variants) > 0 {
			return usageErrorf("--plan takes no counts; drop --control and --variant, or drop --plan")
		}
		drops := f.drops
		if len(drops) == 0 {
			drops = []float64{0, 2 * cfg.MaxDrop}
		}
		p, err := Plan(cfg, f.baseline, drops, f.power)
		if err != nil {
			return usageErrorf("%v", err)
		}
		if f.output == "json" {
			return writeJSONDocument(o.Out, NewPlanDocument(p))
		}
		return RenderPlan(o.Out, p, o.renderOptions())
	}
	for _, name := range []string{"baseline", "drop", "power"} {
		if fs.Changed(name) {
			return usageErrorf("--%s applies to --plan only", name)
		}
	}
	control, variants, err := analyzeArms(f, &file, cfg)
	if err != nil {
		return err
	}
	res, err := Analyze(cfg, control, variants)
	if err != nil {
		return usageErrorf("%v", err)
	}
	if f.output == "json" {
		return writeJSONDocument(o.Out, NewAnalysisDocument(res))
	}
	return RenderAnalysis(o.Out, res, o.renderOptions())
}

func readCountsFile(stdin io.Reader, path string) (CountsFile, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return CountsFile{}, err
	}
	var out CountsFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		return CountsFile{}, usageErrorf("%s: not a counts document (see 'kubectl cx analyze --help'): %v", path, err)
	}
	return out, nil
}

// analyzeConfig builds the engine's configuration: flags given on the
// command line, else the file, else the defaults of a CXExperiment.
func analyzeConfig(fs *pflag.FlagSet, f *analyzeFlags, file *CountsFile) (analysis.Config, error) {
	metric := strings.ToUpper(f.metric)
	if !fs.Changed("metric") && file.Metric != "" {
		metric = strings.ToUpper(file.Metric)
	}
	cfg := analysis.Config{Metric: analysis.Metric(metric), MinResponses: f.minResponses}
	pickInt := func(flag string, v int, fileV *int) int {
		if !fs.Changed(flag) && fileV != nil {
			return *fileV
		}
		return v
	}
	pickFloat := func(flag string, v float64, fileV *float64) float64 {
		if !fs.Changed(flag) && fileV != nil {
			return *fileV
		}
		return v
	}
	if err := analyzeScale(fs, f, file, &cfg, pickInt); err != nil {
		return cfg, err
	}
	cfg.MaxDrop = pickFloat("max-drop", f.maxDrop, file.MaxDrop)
	conf := pickFloat("confidence", f.confidence, file.Confidence)
	if !(conf >= 50 && conf < 100) {
		return cfg, usageErrorf("--confidence is a percentage such as 95, got %g", conf)
	}
	cfg.Confidence = conf / 100
	if !fs.Changed("min-responses") && file.MinResponses != nil {
		cfg.MinResponses = *file.MinResponses
	}
	switch {
	case fs.Changed("minimum"):
		m := f.minimum
		cfg.Minimum = &m
	case file.Minimum != nil:
		m := *file.Minimum
		cfg.Minimum = &m
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usageErrorf("%v", err)
	}
	return cfg, nil
}

// analyzeScale sets the scale of cfg.Metric from the flags and the file.
func analyzeScale(fs *pflag.FlagSet, f *analyzeFlags, file *CountsFile, cfg *analysis.Config, pickInt func(string, int, *int) int) error {
	switch cfg.Metric {
	case analysis.CSAT:
		cfg.ScaleMin, cfg.ScaleMax = 1, pickInt("scale-max", f.scaleMax, file.ScaleMax)
		cfg.SatisfiedAtOrAbove = pickInt("satisfied-at", f.satisfiedAt, file.SatisfiedAtOrAbove)
		if cfg.SatisfiedAtOrAbove == 0 {
			cfg.SatisfiedAtOrAbove = cfg.ScaleMax - 1
		}
	case analysis.NPS:
		cfg.ScaleMin, cfg.ScaleMax = 0, 10
		if pickInt("scale-max", 10, file.ScaleMax) != 10 || (fs.Changed("scale-max") && f.scaleMax != 10) {
			return usageErrorf("NPS is always scored 0..10; drop --scale-max")
		}
		if fs.Changed("satisfied-at") || file.SatisfiedAtOrAbove != nil {
			return usageErrorf("--satisfied-at applies to CSAT only (NPS: promoters 9-10, detractors 0-6)")
		}
	default:
		return usageErrorf("--metric must be CSAT or NPS, got %q", cfg.Metric)
	}
	return nil
}

// parseCounts reads "3,4,10,40,43".
func parseCounts(s string, cfg analysis.Config) ([]int64, error) {
	parts := strings.Split(s, ",")
	want := cfg.ScaleMax - cfg.ScaleMin + 1
	if len(parts) != want {
		return nil, fmt.Errorf("%d counts given, want %d (one per score %d..%d)", len(parts), want, cfg.ScaleMin, cfg.ScaleMax)
	}
	out := make([]int64, len(parts))
	for i, p := range parts {
		n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("count %q for score %d is not a whole number >= 0", p, cfg.ScaleMin+i)
		}
		out[i] = n
	}
	return out, nil
}

func analyzeArms(f *analyzeFlags, file *CountsFile, cfg analysis.Config) (analysis.Arm, []analysis.Arm, error) {
	var control analysis.Arm
	switch {
	case f.control != "":
		counts, err := parseCounts(f.control, cfg)
		if err != nil {
			return control, nil, usageErrorf("--control: %v", err)
		}
		control = analysis.Arm{Name: f.controlName, Counts: counts}
	case file.Control != nil:
		control = analysis.Arm{Name: file.Control.Name, Counts: file.Control.Counts}
		if control.Name == "" {
			control.Name = "control"
		}
	default:
		return control, nil, usageErrorf("give the control's counts with --control (e.g. --control 3,4,10,40,43) or --file, or plan a test with --plan")
	}
	var variants []analysis.Arm
	if len(f.variants) > 0 {
		for _, v := range f.variants {
			name, counts, ok := strings.Cut(v, "=")
			if !ok || strings.TrimSpace(name) == "" {
				return control, nil, usageErrorf("--variant %q: want NAME=COUNTS, e.g. one-page=5,6,12,40,37", v)
			}
			c, err := parseCounts(counts, cfg)
			if err != nil {
				return control, nil, usageErrorf("--variant %s: %v", name, err)
			}
			variants = append(variants, analysis.Arm{Name: strings.TrimSpace(name), Counts: c})
		}
	} else {
		for _, v := range file.Variants {
			variants = append(variants, analysis.Arm{Name: v.Name, Counts: v.Counts})
		}
	}
	if len(variants) == 0 {
		return control, nil, usageErrorf("give at least one variant with --variant NAME=COUNTS or in --file")
	}
	return control, variants, nil
}

// AnalysisResult is what analyze shows: the configuration, the control's
// estimate and each variant's assessment.
type AnalysisResult struct {
	Config          analysis.Config
	Control         string
	ControlEstimate analysis.Estimate
	// ControlInterval is the control's always-valid interval at the level
	// each interval of the segment is built with.
	ControlInterval analysis.Interval
	Assessments     []analysis.Assessment
}

// Analyze runs the decision engine on one segment's counts, the way the
// controller does.
func Analyze(cfg analysis.Config, control analysis.Arm, variants []analysis.Arm) (AnalysisResult, error) {
	as, err := analysis.Evaluate(cfg, control, variants)
	if err != nil {
		return AnalysisResult{}, err
	}
	est, err := analysis.EstimateArm(cfg, control)
	if err != nil {
		return AnalysisResult{}, err
	}
	hw, err := analysis.HalfWidth(est.Variance, cfg.MixingVariance(), cfg.IntervalAlpha(len(variants)))
	if err != nil {
		return AnalysisResult{}, err
	}
	lo, hi := 0.0, 100.0
	if cfg.Metric == analysis.NPS {
		lo = -100
	}
	return AnalysisResult{
		Config: cfg, Control: control.Name, ControlEstimate: est,
		ControlInterval: analysis.Interval{Lower: max(est.Score-hw, lo), Upper: min(est.Score+hw, hi)},
		Assessments:     as,
	}, nil
}

// configLine summarises an engine configuration like settingsLine does for a spec.
func configLine(cfg analysis.Config) string {
	s := cxv1.SatisfactionSettings{Metric: cxv1.SatisfactionMetricKind(cfg.Metric), ScoreMin: cfg.ScaleMin, ScoreMax: cfg.ScaleMax, SatisfiedAtOrAbove: cfg.SatisfiedAtOrAbove}
	parts := []string{scaleText(s), "max drop " + points(cfg.MaxDrop) + " points"}
	if cfg.Minimum != nil {
		parts = append(parts, "minimum "+points(*cfg.Minimum))
	}
	parts = append(parts, "confidence "+percent(cfg.Confidence)+"%", "at least "+thousands(cfg.MinResponses)+" responses per arm")
	return strings.Join(parts, ", ")
}

func f1(x float64) string {
	s := strconv.FormatFloat(x, 'f', 1, 64)
	if s == "-0.0" {
		return "0.0"
	}
	return s
}

// RenderAnalysis writes the result of analyze: a table of the arms, then
// each variant's explanation.
func RenderAnalysis(w io.Writer, r AnalysisResult, o RenderOptions) error {
	p := &printer{w: w}
	p.println(configLine(r.Config))
	p.println()
	t := &table{}
	t.header("VARIANT", "RESPONSES", "SCORE", "DIFF", "VERDICT")
	ci := r.ControlInterval
	name := r.Control
	if name != "control" {
		name += " (control)"
	}
	t.add(c(name), c(thousands(r.ControlEstimate.Responses)),
		c(fmt.Sprintf("%s ± %s", f1(r.ControlEstimate.Score), f1((ci.Upper-ci.Lower)/2))), c("-"), c("-"))
	for _, a := range r.Assessments {
		si, di := a.ScoreInterval, a.DifferenceInterval
		t.add(c(a.Variant), c(thousands(a.Responses)),
			c(fmt.Sprintf("%s ± %s", f1(a.Score), f1((si.Upper-si.Lower)/2))),
			c(fmt.Sprintf("%s [%s, %s]", f1(a.Difference), f1(di.Lower), f1(di.Upper))),
			colored(verdictColor(cxv1.Verdict(a.Verdict)), string(a.Verdict)))
	}
	t.write(p, o)
	p.println()
	for _, a := range r.Assessments {
		p.printf("%s: %s\n", a.Variant, a.Explanation)
	}
	return p.err
}

// PlanRow is the plan for one true drop.
type PlanRow struct {
	Drop float64
	// Verdict is the verdict the drop leads to: Inferior above MaxDrop, NonInferior below.
	Verdict analysis.Verdict
	// AlwaysValid is RequiredResponses: per arm, with a look after every response.
	AlwaysValid int64
	// FixedHorizon is FixedHorizonResponses: per arm, one look, at Power.
	FixedHorizon int64
}

// PlanResult is what analyze --plan shows.
type PlanResult struct {
	Config   analysis.Config
	Baseline float64
	Power    float64
	Rows     []PlanRow
}

// Plan computes the responses per arm needed to call each drop.
func Plan(cfg analysis.Config, baseline float64, drops []float64, power float64) (PlanResult, error) {
	p := PlanResult{Config: cfg, Baseline: baseline, Power: power}
	for _, d := range drops {
		n, err := analysis.RequiredResponses(cfg, baseline, d)
		if err != nil {
			return p, fmt.Errorf("drop %g: %w", d, err)
		}
		fh, err := analysis.FixedHorizonResponses(cfg, baseline, d, power)
		if err != nil {
			return p, fmt.Errorf("drop %g: %w", d, err)
		}
		v := analysis.NonInferior
		if d > cfg.MaxDrop {
			v = analysis.Inferior
		}
		p.Rows = append(p.Rows, PlanRow{Drop: d, Verdict: v, AlwaysValid: n, FixedHorizon: fh})
	}
	return p, nil
}

// RenderPlan writes the plan as a table with a short legend.
func RenderPlan(w io.Writer, plan PlanResult, o RenderOptions) error {
	p := &printer{w: w}
	p.println(configLine(plan.Config))
	p.printf("Control at %s points; one variant against it.\n\n", points(plan.Baseline))
	t := &table{}
	t.header("DROP", "VARIANT SCORE", "VERDICT", "RESPONSES PER ARM (RAPPORT)", fmt.Sprintf("FIXED HORIZON (%s%% POWER)", percent(plan.Power)), "RATIO")
	for _, r := range plan.Rows {
		ratio := "-"
		if r.FixedHorizon > 0 {
			ratio = fmt.Sprintf("%.1fx", float64(r.AlwaysValid)/float64(r.FixedHorizon))
		}
		t.add(c(points(r.Drop)), c(points(plan.Baseline-r.Drop)), colored(verdictColor(cxv1.Verdict(r.Verdict)), string(r.Verdict)),
			c(thousands(r.AlwaysValid)), c(thousands(r.FixedHorizon)), c(ratio))
	}
	t.write(p, o)
	p.println()
	p.println("RAPPORT: responses per arm (variant and control, in each segment) at which Rapport, looking after every")
	p.println("response, is expected to call the verdict (at least min responses). FIXED HORIZON: the classical sample")
	p.println("size for a single look at the end; looking earlier invalidates it. Several variants in a segment need more.")
	return p.err
}
