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
	weights      []int
	planVariants int
	passives     float64
	segments     int
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
max drop, the two cases the margin is designed around), at each step weight
(--weights, the percentage of the segment each variant gets), the responses
of the segment (and of the variant and the control) after which Rapport,
looking after every 10 responses, reaches the verdict in half and in nine
out of ten runs, next to the classical fixed-horizon sample (a single look,
80% power by default), which is only valid if nobody looks before the end.

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

  # Plan: responses to catch a 5-point drop from a CSAT of 85, at steps of 5%, 25% and 50%
  kubectl cx analyze --plan --baseline 85 --drop 5 --weights 5,25,50

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
	fl.IntSliceVar(&f.weights, "weights", []int{50}, "with --plan: the steps' weights, percent of the segment to each variant (e.g. 5,25,50)")
	fl.IntVar(&f.planVariants, "variants", 1, "with --plan: the number of non-control variants in each segment")
	fl.Float64Var(&f.passives, "passives", 35, "with --plan and NPS: the share of passives, in percent")
	fl.IntVar(&f.segments, "segments", 1, "the number of segments of the experiment (the advance budget is split across them)")
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
		var weights []int32
		for _, w := range f.weights {
			weights = append(weights, int32(w))
		}
		p, err := Plan(cfg, f.baseline, drops, weights, max(f.planVariants, 1), f.passives, f.power)
		if err != nil {
			return usageErrorf("%v", err)
		}
		if f.output == "json" {
			return writeJSONDocument(o.Out, NewPlanDocument(p))
		}
		return RenderPlan(o.Out, p, o.renderOptions())
	}
	for _, name := range []string{"baseline", "drop", "power", "weights", "variants", "passives"} {
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
	cfg := analysis.Config{Metric: analysis.Metric(metric), MinResponses: f.minResponses, Segments: f.segments}
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
	Config      analysis.Config
	Control     analysis.ArmEstimate
	Assessments []analysis.Assessment
	SampleRatio analysis.SampleRatio
}

// Analyze runs the decision engine on one segment's counts, the way the
// controller does (the counts read as one epoch).
func Analyze(cfg analysis.Config, control analysis.Arm, variants []analysis.Arm) (AnalysisResult, error) {
	seg := analysis.Segment{Control: control.Name, Epochs: []analysis.Epoch{{Number: 1, Counts: analysis.Counts{control.Name: control.Counts}}}}
	for _, v := range variants {
		seg.Variants = append(seg.Variants, v.Name)
		seg.Epochs[0].Counts[v.Name] = v.Counts
	}
	res, err := analysis.Evaluate(cfg, seg)
	if err != nil {
		return AnalysisResult{}, err
	}
	return AnalysisResult{Config: cfg, Control: res.Control, Assessments: res.Variants, SampleRatio: res.SampleRatio}, nil
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
	ci := r.Control.Interval
	name := r.Control.Name
	if name != "control" {
		name += " (control)"
	}
	score := f1(r.Control.Score)
	if r.Control.Responses >= r.Config.MinResponses {
		score = fmt.Sprintf("%s [%s, %s]", f1(r.Control.Score), f1(ci.Lower), f1(ci.Upper))
	}
	t.add(c(name), c(thousands(r.Control.Responses)), c(score), c("-"), c("-"))
	for _, a := range r.Assessments {
		si, di := a.ScoreInterval, a.DifferenceInterval
		score, diff := f1(a.Score), f1(a.Difference)
		if a.Verdict != analysis.InsufficientData {
			score = fmt.Sprintf("%s [%s, %s]", f1(a.Score), f1(si.Lower), f1(si.Upper))
			diff = fmt.Sprintf("%s [%s, %s]", f1(a.Difference), f1(di.Lower), f1(di.Upper))
		}
		t.add(c(a.Variant), c(thousands(a.Responses)), c(score), c(diff),
			colored(verdictColors[cxv1.Verdict(a.Verdict)], string(a.Verdict)))
	}
	t.write(p, o)
	p.println()
	for _, a := range r.Assessments {
		p.printf("%s: %s\n", a.Variant, a.Explanation)
	}
	return p.err
}

// PlanRow is the plan for one true drop at one step weight.
type PlanRow struct {
	Drop float64
	// Weight is the step's weight: the percentage of the segment each
	// variant receives; the control keeps the rest.
	Weight int32
	analysis.Plan
}

// PlanResult is what analyze --plan shows.
type PlanResult struct {
	Config   analysis.Config
	Baseline float64
	Passives float64
	Variants int
	Power    float64
	Rows     []PlanRow
}

// Plan computes when each drop is expected to be called at each step weight.
func Plan(cfg analysis.Config, baseline float64, drops []float64, weights []int32, variants int, passives, power float64) (PlanResult, error) {
	p := PlanResult{Config: cfg, Baseline: baseline, Passives: passives, Variants: variants, Power: power}
	for _, w := range weights {
		if w < 1 || int(w)*variants >= 100 {
			return p, fmt.Errorf("weight %d: each of %d variant(s) gets the weight and the control the rest, so the weight must be 1..%d", w, variants, (99)/variants)
		}
		for _, d := range drops {
			pl, err := analysis.PlanComparison(cfg, analysis.PlanInput{
				Baseline: baseline, Drop: d, Passives: passives, VariantWeight: w, ControlWeight: 100 - int32(variants)*w,
				Variants: variants, Power: power,
			})
			if err != nil {
				return p, fmt.Errorf("drop %g at weight %d: %w", d, w, err)
			}
			p.Rows = append(p.Rows, PlanRow{Drop: d, Weight: w, Plan: pl})
		}
	}
	return p, nil
}

// RenderPlan writes the plan as a table with a short legend.
func RenderPlan(w io.Writer, plan PlanResult, o RenderOptions) error {
	p := &printer{w: w}
	p.println(configLine(plan.Config))
	p.printf("Control at %s points; %d variant(s) against it", points(plan.Baseline), plan.Variants)
	if plan.Config.Metric == analysis.NPS {
		p.printf(", %s%% passives", points(plan.Passives))
	}
	p.printf("; %d segment(s) share the advance budget.\n\n", plan.Config.Segments)
	t := &table{}
	t.header("DROP", "VARIANT SCORE", "VERDICT", "WEIGHT", "SEGMENT RESPONSES (MEDIAN / P90)", "VARIANT", "CONTROL",
		fmt.Sprintf("FIXED HORIZON (%s%% POWER)", percent(plan.Power)))
	for _, r := range plan.Rows {
		median, p90 := "never", "never"
		if r.Median.Segment > 0 {
			median = thousands(r.Median.Segment)
		}
		if r.P90.Segment > 0 {
			p90 = thousands(r.P90.Segment)
		}
		t.add(c(points(r.Drop)), c(points(plan.Baseline-r.Drop)), colored(verdictColors[cxv1.Verdict(r.Verdict)], string(r.Verdict)),
			c(fmt.Sprintf("%d%%", r.Weight)), c(median+" / "+p90), c(thousands(r.Median.Variant)), c(thousands(r.Median.Control)),
			c(thousands(r.FixedHorizon)))
	}
	t.write(p, o)
	p.println()
	p.println("SEGMENT RESPONSES: responses of the segment (every variant together) after which half (median) and nine")
	p.println("in ten (p90) of runs reach the verdict, looking after every 10 responses; VARIANT and CONTROL: their")
	p.println("responses at the median. A variant beyond the margin never advances, so its rollback is planned at the")
	p.println("first step's weight. FIXED HORIZON: the classical sample for a single look at the end (same error rate);")
	p.println("looking earlier invalidates it. Simulated on the normal approximation with a fixed seed (deterministic).")
	return p.err
}
