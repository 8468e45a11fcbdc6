package analysis

import (
	"math"
	"strings"
	"testing"
)

func ptr(x float64) *float64 { return &x }

func csatConfig() Config {
	return Config{Metric: CSAT, ScaleMin: 1, ScaleMax: 5, SatisfiedAtOrAbove: 4, MaxDrop: 3, Confidence: 0.95, MinResponses: 100, Segments: 1}
}

func npsConfig() Config {
	return Config{Metric: NPS, ScaleMin: 0, ScaleMax: 10, MaxDrop: 5, Confidence: 0.95, MinResponses: 100, Segments: 1}
}

// csat is a 1..5 tally with n responses of which sat are 4s or 5s.
func csat(n, sat int64) []int64 { return []int64{n - sat, 0, 0, sat / 2, sat - sat/2} }

// nps is a 0..10 tally of promoters, passives and detractors.
func nps(prom, pass, det int64) []int64 {
	c := make([]int64, 11)
	c[0], c[7], c[10] = det, pass, prom
	return c
}

// one is a segment with a single epoch of unknown weights.
func one(control, variant []int64) Segment {
	return Segment{Control: "control", Variants: []string{"v"},
		Epochs: []Epoch{{Number: 1, Counts: Counts{"control": control, "v": variant}}}}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func finite(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name   string
		modify func(*Config)
		want   []string // substrings; none means valid
	}{
		{"valid CSAT", func(*Config) {}, nil},
		{"valid CSAT 1..2", func(c *Config) { c.ScaleMax, c.SatisfiedAtOrAbove = 2, 2 }, nil},
		{"valid CSAT with minimum", func(c *Config) { c.Minimum = ptr(70) }, nil},
		{"valid NPS", func(c *Config) { *c = npsConfig(); c.Minimum = ptr(-20) }, nil},
		{"valid zero drop", func(c *Config) { c.MaxDrop = 0 }, nil},
		{"metric", func(c *Config) { c.Metric = "CES" }, []string{`Config.Metric must be "CSAT" or "NPS", got "CES"`}},
		{"CSAT scale min", func(c *Config) { c.ScaleMin = 0 }, []string{"Config.ScaleMin must be 1"}},
		{"CSAT scale max", func(c *Config) { c.ScaleMax = 11 }, []string{"Config.ScaleMax must be in 2..10"}},
		{"satisfied too low", func(c *Config) { c.SatisfiedAtOrAbove = 1 }, []string{"Config.SatisfiedAtOrAbove must be in 2..5"}},
		{"satisfied too high", func(c *Config) { c.SatisfiedAtOrAbove = 6 }, []string{"Config.SatisfiedAtOrAbove"}},
		{"NPS scale", func(c *Config) { *c = npsConfig(); c.ScaleMin, c.ScaleMax = 1, 5 },
			[]string{"Config.ScaleMin must be 0 for NPS", "Config.ScaleMax must be 10 for NPS"}},
		{"CSAT minimum", func(c *Config) { c.Minimum = ptr(-1) }, []string{"Config.Minimum must be in 0..100"}},
		{"NPS minimum", func(c *Config) { *c = npsConfig(); c.Minimum = ptr(101) }, []string{"Config.Minimum must be in -100..100"}},
		{"NaN minimum", func(c *Config) { c.Minimum = ptr(math.NaN()) }, []string{"Config.Minimum"}},
		{"negative drop", func(c *Config) { c.MaxDrop = -1 }, []string{"Config.MaxDrop must be in 0..100"}},
		{"whole-range drop", func(c *Config) { c.MaxDrop = 100 }, []string{"Config.MaxDrop must be in 0..100"}},
		{"NaN drop", func(c *Config) { c.MaxDrop = math.NaN() }, []string{"Config.MaxDrop"}},
		{"confidence 1", func(c *Config) { c.Confidence = 1 }, []string{"Config.Confidence"}},
		{"confidence percent", func(c *Config) { c.Confidence = 95 }, []string{"Config.Confidence"}},
		{"min responses", func(c *Config) { c.MinResponses = 0 }, []string{"Config.MinResponses must be at least 1"}},
		{"segments", func(c *Config) { c.Segments = 0 }, []string{"Config.Segments must be at least 1"}},
		{"all at once", func(c *Config) { *c = Config{Metric: CSAT} },
			[]string{"ScaleMin", "ScaleMax", "Confidence", "MinResponses", "Segments"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := csatConfig()
			c.modify(&cfg)
			err := cfg.Validate()
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestErrorBudgets(t *testing.T) {
	cfg := csatConfig()
	cfg.Segments = 4
	b := cfg.ErrorBudgets(3)
	// alpha 0.05 over 3 variants: 1/60 per rule; advance family-wise over 4 segments.
	if !near(b.Advance, 0.05/12) || !near(b.Rollback, 0.05/3*(1-RecentShare)) || !near(b.Minimum, 0.05/3) {
		t.Errorf("budgets %+v", b)
	}
	var recent float64
	for k := int32(1); k <= 1_000_000; k++ {
		recent += b.RecentWindow(k)
	}
	if recent > 0.05/3*RecentShare || recent < 0.05/3*RecentShare*0.99999 {
		t.Errorf("recent windows spend %g in all, want (just under) %g", recent, 0.05/3*RecentShare)
	}
	if total := b.Rollback + recent; total > 0.05/3 {
		t.Errorf("rollback claims spend %g > alpha/K", total)
	}
	cfg.Minimum = ptr(70)
	if m := cfg.ErrorBudgets(3); !near(m.Advance, 0.05/24) || !near(m.Minimum, 0.05/6) {
		t.Errorf("with minimum: %+v", m)
	}
	if got := cfg.MixingVariance(); !near(got, (tauFactor*3)*(tauFactor*3)) {
		t.Errorf("tau² %g", got)
	}
	cfg.MaxDrop = 0
	if got := cfg.MixingVariance(); got != 1 {
		t.Errorf("tau² for MaxDrop 0: %g, want the 1-point floor", got)
	}
}

func TestOneSidedMixture(t *testing.T) {
	// Without evidence (z = 0, info = 0) the martingale is 1.
	if got := logOneSided(0, 0, 9); !near(got, 0) {
		t.Errorf("log M+(0, 0) = %g, want 0", got)
	}
	// It grows with z and is symmetric in nothing: negative z has little evidence.
	if !(logOneSided(10, 1, 9) > logOneSided(5, 1, 9)) || !(logOneSided(-5, 1, 9) < 0) {
		t.Error("log M+ does not grow with z, or gives evidence for the other side")
	}
	// Deep lower tail stays finite (Mills' ratio branch) and continuous.
	a, b := logPhi(-19.999999), logPhi(-20.000001)
	if !finite(a, b) || math.Abs(a-b) > 1e-3 {
		t.Errorf("logPhi around -20: %g, %g", a, b)
	}
	if got := logPhi(-40); !finite(got) || got > -800 {
		t.Errorf("logPhi(-40) = %g", got)
	}
}

func TestVerdictRules(t *testing.T) {
	withMin := func(m float64, drop float64) Config {
		c := csatConfig()
		c.Minimum, c.MaxDrop = ptr(m), drop
		return c
	}
	smallN := csatConfig()
	smallN.MinResponses = 10
	for _, c := range []struct {
		name             string
		cfg              Config
		control, variant []int64
		want             Verdict
		rule             Rule
		explain          string
	}{
		{"few variant responses", csatConfig(), csat(5000, 4250), csat(99, 10),
			InsufficientData, "", "insufficient data after 99 responses (control 5000), need 100 per arm"},
		{"zero control responses", csatConfig(), csat(0, 0), csat(5000, 4250),
			InsufficientData, "", "insufficient data after 5000 responses (control 0)"},
		{"no responses at all", csatConfig(), csat(0, 0), csat(0, 0),
			InsufficientData, "", "CSAT 0.0 vs control 0.0: difference 0.0: insufficient data"},
		{"large drop", csatConfig(), csat(2000, 1700), csat(2000, 1400),
			Inferior, RuleMaxDrop, "difference -15.0 [-"},
		{"equal, large", csatConfig(), csat(20000, 17000), csat(20000, 17000),
			NonInferior, "", "lies above -3 (max drop): non-inferior after 20000 responses"},
		{"equal, small", csatConfig(), csat(200, 170), csat(200, 170),
			Inconclusive, "", "straddles -3 (max drop): inconclusive after 200 responses"},
		{"better variant", csatConfig(), csat(3000, 2550), csat(3000, 2700),
			NonInferior, "", "difference 5.0"},
		{"minimum only", withMin(90, 3), csat(20000, 17000), csat(20000, 17000),
			Inferior, RuleMinimum, "lies above -3 (max drop) and the CSAT interval lies below 90 (minimum): inferior"},
		{"minimum met", withMin(70, 3), csat(20000, 17000), csat(20000, 17000),
			NonInferior, "", "and the CSAT interval lies above 70 (minimum): non-inferior"},
		{"minimum straddled", withMin(80, 10), csat(20000, 17000), csat(2000, 1600),
			Inconclusive, "", "lies above -10 (max drop) and the CSAT interval straddles 80 (minimum)"},
		// Ten perfect scores are not evidence of anything.
		{"degenerate all satisfied", smallN, csat(10, 10), csat(10, 10),
			Inconclusive, "", "CSAT 100.0 ["},
		{"degenerate all satisfied, many", csatConfig(), csat(5000, 5000), csat(5000, 5000),
			NonInferior, "", "non-inferior"},
		// Ten answers each are not enough even for the largest drop: the
		// mixture is tuned to effects near the margin, and pays for it here.
		{"degenerate control, unhappy variant", smallN, csat(10, 10), csat(10, 0),
			Inconclusive, "", "difference -100.0 ["},
		{"degenerate control, unhappy variant, 50 each", smallN, csat(50, 50), csat(50, 0),
			Inferior, RuleMaxDrop, "difference -100.0 ["},
		{"zero drop tolerated", func() Config { c := csatConfig(); c.MaxDrop = 0; return c }(),
			csat(20000, 17000), csat(20000, 16000), Inferior, RuleMaxDrop, "lies below 0 (max drop)"},
		{"NPS drop", npsConfig(), nps(1000, 700, 300), nps(700, 800, 500),
			Inferior, RuleMaxDrop, "NPS 10.0 ["},
		{"NPS equal", npsConfig(), nps(10000, 7000, 3000), nps(10000, 7000, 3000),
			NonInferior, "", "NPS 35.0 ["},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Evaluate(c.cfg, one(c.control, c.variant))
			if err != nil {
				t.Fatal(err)
			}
			a := got.Variants[0]
			t.Log(a.Explanation)
			if a.Verdict != c.want || a.Rule != c.rule {
				t.Errorf("verdict %s (rule %q), want %s (rule %q)", a.Verdict, a.Rule, c.want, c.rule)
			}
			if !strings.Contains(a.Explanation, c.explain) {
				t.Errorf("explanation %q does not contain %q", a.Explanation, c.explain)
			}
			if !finite(a.Score, a.Difference, a.ScoreInterval.Lower, a.ScoreInterval.Upper,
				a.DifferenceInterval.Lower, a.DifferenceInterval.Upper, got.Control.Score) {
				t.Errorf("non-finite figure in %+v", a)
			}
			if a.Verdict == InsufficientData {
				return
			}
			if a.ScoreInterval.Upper-a.ScoreInterval.Lower <= 0 || a.DifferenceInterval.Upper < a.DifferenceInterval.Lower {
				t.Errorf("empty interval: score %+v difference %+v", a.ScoreInterval, a.DifferenceInterval)
			}
			// The intervals and the verdict say the same thing.
			m := -c.cfg.MaxDrop
			if (a.Rule == RuleMaxDrop) != (a.DifferenceInterval.Upper < m) {
				t.Errorf("rule %q but the difference's upper bound %g vs margin %g", a.Rule, a.DifferenceInterval.Upper, m)
			}
			if c.cfg.Minimum == nil && (a.Verdict == NonInferior) != (a.DifferenceInterval.Lower > m) {
				t.Errorf("verdict %s but the difference's lower bound %g vs margin %g", a.Verdict, a.DifferenceInterval.Lower, m)
			}
			if !(a.Difference >= a.DifferenceInterval.Lower-1e-6 && a.Difference <= a.DifferenceInterval.Upper+1e-6) {
				t.Errorf("difference %g outside its interval %+v", a.Difference, a.DifferenceInterval)
			}
		})
	}
}

func TestExplanationFormat(t *testing.T) {
	got, err := Evaluate(csatConfig(), one(csat(1500, 1290), csat(1200, 888)))
	if err != nil {
		t.Fatal(err)
	}
	a := got.Variants[0]
	want := "CSAT 74.0 [" + num(a.ScoreInterval.Lower) + ", " + num(a.ScoreInterval.Upper) + "] vs control 86.0: difference -12.0 [" +
		num(a.DifferenceInterval.Lower) + ", " + num(a.DifferenceInterval.Upper) + "] lies below -3 (max drop): inferior after 1200 responses"
	if a.Explanation != want {
		t.Errorf("explanation\n got %q\nwant %q", a.Explanation, want)
	}
	if got.Control.Responses != 1500 || !near(got.Control.Score, 86) || !(got.Control.Interval.Lower < 86 && got.Control.Interval.Upper > 86) {
		t.Errorf("control estimate %+v", got.Control)
	}
}

// TestStratifiedByEpoch is Simpson's paradox, by hand: in each epoch the
// variant matches the control, but satisfaction fell from 90 to 80 while the
// variant's share rose from 10% to 50%. Pooled, the variant looks 6 points
// worse (more of its answers come from the bad period); per epoch it is
// equal, and that is what the engine reports.
func TestStratifiedByEpoch(t *testing.T) {
	seg := Segment{Control: "control", Variants: []string{"v"}, Epochs: []Epoch{
		{Number: 1, Weights: map[string]int32{"control": 90, "v": 10}, Counts: Counts{"control": csat(18000, 16200), "v": csat(2000, 1800)}},
		{Number: 2, Weights: map[string]int32{"control": 50, "v": 50}, Counts: Counts{"control": csat(10000, 8000), "v": csat(10000, 8000)}},
	}}
	got, err := Evaluate(csatConfig(), seg)
	if err != nil {
		t.Fatal(err)
	}
	a := got.Variants[0]
	pooled := a.Score - got.Control.Score
	t.Logf("pooled difference %.2f, stratified %.2f %+v: %s", pooled, a.Difference, a.DifferenceInterval, a.Explanation)
	if pooled > -4 {
		t.Fatalf("the example lost its point: pooled difference %g", pooled)
	}
	if math.Abs(a.Difference) > 1e-9 || a.Verdict != NonInferior {
		t.Errorf("stratified difference %g (%s), want 0 and NonInferior", a.Difference, a.Verdict)
	}
	if got.SampleRatio.Mismatch {
		t.Errorf("no mismatch expected: %+v", got.SampleRatio)
	}
}

func TestRecentWindowCatchesLateRegression(t *testing.T) {
	cfg := csatConfig()
	// 40,000 answers per arm at CSAT 85; the window opens there. Then 2,000
	// more per arm: the control still at 85, the variant at 75.
	w := Window{Index: 5, Epoch: 1, ControlCounts: csat(40000, 34000), VariantCounts: csat(40000, 34000)}
	seg := one(csat(42000, 35700), csat(42000, 35500))
	seg.Windows = map[string][]Window{"v": {w}}
	got, err := Evaluate(cfg, seg)
	if err != nil {
		t.Fatal(err)
	}
	a := got.Variants[0]
	t.Log(a.Explanation)
	if a.Verdict != Inferior || a.Rule != RuleRecentMaxDrop || a.Recent == nil || a.Recent.Window != 5 || a.Recent.Responses != 2000 {
		t.Fatalf("want Inferior by the recent window 5 over 2,000 responses, got %s %q %+v", a.Verdict, a.Rule, a.Recent)
	}
	if !(a.Recent.UpperBound < -cfg.MaxDrop) || !near(a.Recent.Difference, -10) {
		t.Errorf("window figures %+v", a.Recent)
	}
	if !strings.Contains(a.Explanation, "over the last 2000 responses (window 5) the difference is -10.0") {
		t.Errorf("explanation does not name the window: %s", a.Explanation)
	}
	// Over the whole run the drop is diluted and not called.
	seg.Windows = nil
	got, _ = Evaluate(cfg, seg)
	if v := got.Variants[0].Verdict; v == Inferior {
		t.Errorf("without the window the whole run says %s; the example lost its point", v)
	}
}

func TestWindowsOpenAndRoll(t *testing.T) {
	cfg := csatConfig()
	spacing := cfg.WindowSpacing()
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	seg := one(csat(0, 0), csat(0, 0))
	seg.Epochs[0].Weights = map[string]int32{"control": 50, "v": 50}
	var opened []int64
	for n := int64(100); n <= 12*spacing; n++ {
		seg.Epochs[0].Counts = Counts{"control": csat(n, n*85/100), "v": csat(n, n*85/100)}
		_, _, ws, err := e.Verdicts(seg)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws["v"]) > len(seg.Windows["v"]) || (len(ws["v"]) > 0 && ws["v"][len(ws["v"])-1].Index != seg.Windows["v"][len(seg.Windows["v"])-1].Index) {
			opened = append(opened, n)
		}
		seg.Windows = ws
	}
	ws := seg.Windows["v"]
	t.Logf("spacing %d; windows opened at %v per arm; kept %+v", spacing, opened, ws)
	if len(opened) != 12 || opened[0] != spacing || opened[1] != 2*spacing {
		t.Errorf("windows opened at %v, want every %d responses per arm", opened, spacing)
	}
	if len(ws) != MaxWindows || ws[0].Index != 12-MaxWindows+1 || ws[MaxWindows-1].Index != 12 {
		t.Errorf("kept windows %+v, want the newest %d", ws, MaxWindows)
	}
	// A rolled-back variant (weight 0) opens none.
	seg.Epochs = append(seg.Epochs, Epoch{Number: 2, Weights: map[string]int32{"control": 100, "v": 0},
		Counts: Counts{"control": csat(20*spacing, 17*spacing), "v": csat(0, 0)}})
	_, _, after, _ := e.Verdicts(seg)
	if len(after["v"]) != MaxWindows || after["v"][MaxWindows-1].Index != 12 {
		t.Errorf("a variant without traffic opened a window: %+v", after["v"])
	}
}

func TestSampleRatio(t *testing.T) {
	ep := func(ctl, v int64) Epoch {
		return Epoch{Number: 1, Weights: map[string]int32{"control": 75, "v": 25}, Counts: Counts{"control": csat(ctl, ctl*85/100), "v": csat(v, v*85/100)}}
	}
	cfg := csatConfig()
	for _, c := range []struct {
		name     string
		ctl, v   int64
		mismatch bool
	}{
		{"as expected", 7500, 2500, false},
		{"small noise", 7550, 2450, false},
		{"30% of the variant's answers lost", 7500, 1750, true},
		{"no responses", 0, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			seg := Segment{Control: "control", Variants: []string{"v"}, Epochs: []Epoch{ep(c.ctl, c.v)}}
			got, err := Evaluate(cfg, seg)
			if err != nil {
				t.Fatal(err)
			}
			sr := got.SampleRatio
			t.Logf("%+v", sr)
			if sr.Mismatch != c.mismatch {
				t.Errorf("mismatch %v, want %v", sr.Mismatch, c.mismatch)
			}
			if c.ctl > 0 && (!near(sr.Expected["v"], 25) || !near(sr.Observed["v"], 100*float64(c.v)/float64(c.ctl+c.v)) || sr.Epoch != 1) {
				t.Errorf("shares reported %+v", sr)
			}
		})
	}
	// Epochs with unknown weights (before epochs were recorded) are not tested.
	seg := one(csat(7500, 6000), csat(100, 80))
	if got, _ := Evaluate(cfg, seg); got.SampleRatio.Mismatch || got.SampleRatio.Epoch != 0 {
		t.Errorf("legacy epoch tested: %+v", got.SampleRatio)
	}
	// The threshold is split across segments.
	cfg.Segments = 10
	if got, _ := Evaluate(cfg, seg); !near(got.SampleRatio.Threshold, -math.Log(SampleRatioAlpha/10)) {
		t.Errorf("threshold %g", got.SampleRatio.Threshold)
	}
}

func TestEvaluateErrors(t *testing.T) {
	ok := one(csat(100, 80), csat(100, 80))
	for _, c := range []struct {
		name string
		seg  Segment
		want string
	}{
		{"no variants", func() Segment { s := ok; s.Variants = nil; return s }(), "need 1..7 variants"},
		{"eight variants", func() Segment {
			s := ok
			s.Variants = []string{"a", "b", "c", "d", "e", "f", "g", "h"}
			return s
		}(), "need 1..7 variants"},
		{"unnamed control", func() Segment { s := ok; s.Control = ""; return s }(), "every arm needs a name"},
		{"duplicate", func() Segment { s := ok; s.Variants = []string{"v", "v"}; return s }(), `arm name "v" is used twice`},
		{"variant named like control", func() Segment { s := ok; s.Variants = []string{"control"}; return s }(), "used twice"},
		{"short counts", func() Segment { return one(csat(100, 80), []int64{1, 2}) }(), `arm "v" has 2 counts in epoch 1, want 5`},
		{"negative", func() Segment { return one(csat(100, 80), []int64{1, 2, -3, 4, 5}) }(), "negative count (-3) for score 3"},
		{"epochs out of order", func() Segment {
			s := ok
			s.Epochs = []Epoch{{Number: 2, Counts: Counts{}}, {Number: 1, Counts: Counts{}}}
			return s
		}(), "increasing order"},
		{"bad window", func() Segment {
			s := ok
			s.Windows = map[string][]Window{"v": {{Index: 1, Epoch: 1, ControlCounts: []int64{1}, VariantCounts: csat(1, 1)}}}
			return s
		}(), "window 1 of v"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Evaluate(csatConfig(), c.seg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, err := Evaluate(Config{}, ok); err == nil || !strings.Contains(err.Error(), "Config.Metric") {
		t.Errorf("invalid config: %v", err)
	}
}

func TestEstimateArm(t *testing.T) {
	e, err := EstimateArm(csatConfig(), Arm{Name: "a", Counts: []int64{1, 2, 3, 4, 10}})
	if err != nil || e.Responses != 20 || !near(e.Score, 70) {
		t.Errorf("CSAT: %+v %v", e, err)
	}
	e, err = EstimateArm(npsConfig(), Arm{Name: "a", Counts: nps(50, 35, 15)})
	if err != nil || e.Responses != 100 || !near(e.Score, 35) {
		t.Errorf("NPS: %+v %v", e, err)
	}
	if _, err := EstimateArm(csatConfig(), Arm{Name: "v1", Counts: []int64{1, 2, 3}}); err == nil || !strings.Contains(err.Error(), `arm "v1" has 3 counts`) {
		t.Errorf("short counts: %v", err)
	}
}

// TestIntervalsShrinkWithResponses: more evidence, narrower intervals, for
// every metric.
func TestIntervalsShrinkWithResponses(t *testing.T) {
	for _, cfg := range []Config{csatConfig(), npsConfig()} {
		prevScore, prevDiff := math.Inf(1), math.Inf(1)
		for k := int64(1); k <= 1024; k *= 2 {
			seg := one(csat(100*k, 85*k), csat(100*k, 80*k))
			if cfg.Metric == NPS {
				seg = one(nps(50*k, 35*k, 15*k), nps(45*k, 37*k, 18*k))
			}
			got, err := Evaluate(cfg, seg)
			if err != nil {
				t.Fatal(err)
			}
			a := got.Variants[0]
			ws, wd := a.ScoreInterval.Upper-a.ScoreInterval.Lower, a.DifferenceInterval.Upper-a.DifferenceInterval.Lower
			if ws >= prevScore || wd >= prevDiff {
				t.Errorf("%s at %d per arm: widths %g, %g did not shrink from %g, %g", cfg.Metric, 100*k, ws, wd, prevScore, prevDiff)
			}
			prevScore, prevDiff = ws, wd
		}
	}
}

func TestPlanComparison(t *testing.T) {
	cfg := csatConfig()
	prev := int64(math.MaxInt64)
	for _, drop := range []float64{5, 6, 8, 12} {
		p, err := PlanComparison(cfg, PlanInput{Baseline: 85, Drop: drop, VariantWeight: 50, ControlWeight: 50})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("drop %g: %+v", drop, p)
		if p.Verdict != Inferior || p.Reached < 0.99 || p.Median.Variant >= prev || p.P80.Segment < p.Median.Segment || p.P90.Segment < p.P80.Segment {
			t.Errorf("drop %g: %+v", drop, p)
		}
		prev = p.Median.Variant
	}
	// At a 5% step the same precision needs about twice the variant's
	// responses of a balanced comparison less (the large control is nearly
	// exact), but many more responses of the segment.
	small, _ := PlanComparison(cfg, PlanInput{Baseline: 85, Drop: 8, VariantWeight: 5, ControlWeight: 95})
	even, _ := PlanComparison(cfg, PlanInput{Baseline: 85, Drop: 8, VariantWeight: 50, ControlWeight: 50})
	if !(small.Median.Segment > 3*even.Median.Segment) || !(small.Median.Variant < even.Median.Variant) {
		t.Errorf("5%% step %+v vs 50%% step %+v", small.Median, even.Median)
	}
	if p, _ := PlanComparison(cfg, PlanInput{Baseline: 85, Drop: 0, VariantWeight: 50, ControlWeight: 50}); p.Verdict != NonInferior {
		t.Errorf("no drop plans %s", p.Verdict)
	}
	for _, bad := range []PlanInput{
		{Baseline: 85, Drop: 3, VariantWeight: 50, ControlWeight: 50},
		{Baseline: 85, Drop: 8, VariantWeight: 0, ControlWeight: 50},
		{Baseline: 85, Drop: 8, VariantWeight: 60, ControlWeight: 50},
		{Baseline: 100, Drop: 8, VariantWeight: 50, ControlWeight: 50},
		{Baseline: 5, Drop: 8, VariantWeight: 50, ControlWeight: 50},
	} {
		if _, err := PlanComparison(cfg, bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
	if _, err := PlanComparison(npsConfig(), PlanInput{Baseline: 50, Drop: 8, Passives: 80, VariantWeight: 50, ControlWeight: 50}); err == nil {
		t.Error("NPS 50 with 80% passives accepted")
	}
}
