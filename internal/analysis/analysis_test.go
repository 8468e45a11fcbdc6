package analysis

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func ptr(x float64) *float64 { return &x }

func csatConfig() Config {
	return Config{Metric: CSAT, ScaleMin: 1, ScaleMax: 5, SatisfiedAtOrAbove: 4, MaxDrop: 3, Confidence: 0.95, MinResponses: 100}
}

func npsConfig() Config {
	return Config{Metric: NPS, ScaleMin: 0, ScaleMax: 10, MaxDrop: 5, Confidence: 0.95, MinResponses: 100}
}

// csatTally is a 1..5 tally with n responses of which sat are 4s or 5s.
func csatTally(name string, n, sat int64) Arm {
	return Arm{Name: name, Counts: []int64{n - sat, 0, 0, sat / 2, sat - sat/2}}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestEstimateArm(t *testing.T) {
	csat10 := Config{Metric: CSAT, ScaleMin: 1, ScaleMax: 10, SatisfiedAtOrAbove: 8, MaxDrop: 3, Confidence: 0.95, MinResponses: 1}
	for _, c := range []struct {
		name      string
		cfg       Config
		counts    []int64
		n         int64
		score, vr float64 // points, points²
	}{
		// p = 14/20 = 0.7; 1e4 * 0.7*0.3/20 = 105.
		{"CSAT 1..5", csatConfig(), []int64{1, 2, 3, 4, 10}, 20, 70, 105},
		// scores 8..10 satisfied: 30/40 = 0.75; 1e4 * 0.1875/40 = 46.875.
		{"CSAT 1..10", csat10, []int64{0, 0, 0, 0, 0, 5, 5, 10, 10, 10}, 40, 75, 46.875},
		// all satisfied: floor q(1-q), q = 1/12, over 10 responses.
		{"CSAT all 5s", csatConfig(), []int64{0, 0, 0, 0, 10}, 10, 100, 1e4 * (1.0 / 12) * (11.0 / 12) / 10},
		{"CSAT all 1s", csatConfig(), []int64{10, 0, 0, 0, 0}, 10, 0, 1e4 * (1.0 / 12) * (11.0 / 12) / 10},
		{"CSAT no responses", csatConfig(), []int64{0, 0, 0, 0, 0}, 0, 0, 2500},
		// 50 promoters, 35 passives, 15 detractors: NPS 35, 1e4 * (0.65 - 0.35²)/100 = 52.75.
		{"NPS 50/35/15", npsConfig(), []int64{1, 1, 1, 2, 2, 3, 5, 15, 20, 20, 30}, 100, 35, 52.75},
		// half promoters, half detractors: NPS 0, 1e4 * (1 - 0)/10 = 1000.
		{"NPS polarised", npsConfig(), []int64{5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5}, 10, 0, 1000},
		// 8 detractors, 2 passives: NPS -80, 1e4 * (0.8 - 0.64)/10 = 160.
		{"NPS detractors", npsConfig(), []int64{0, 0, 0, 0, 0, 4, 4, 1, 1, 0, 0}, 10, -80, 160},
		{"NPS all promoters", npsConfig(), []int64{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20}, 20, 100, 1e4 * (1.0 / 22) * (21.0 / 22) / 20},
		{"NPS all passives", npsConfig(), []int64{0, 0, 0, 0, 0, 0, 0, 3, 5, 0, 0}, 8, 0, 1e4 * 0.1 * 0.9 / 8},
		{"NPS no responses", npsConfig(), make([]int64, 11), 0, 0, 2500},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := EstimateArm(c.cfg, Arm{Name: "a", Counts: c.counts})
			if err != nil {
				t.Fatal(err)
			}
			if e.Responses != c.n || !near(e.Score, c.score) || !near(e.Variance, c.vr) {
				t.Errorf("got n=%d score=%g variance=%g, want n=%d score=%g variance=%g",
					e.Responses, e.Score, e.Variance, c.n, c.score, c.vr)
			}
		})
	}
}

func TestEstimateArmErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		cfg    Config
		counts []int64
		want   string
	}{
		{"short", csatConfig(), []int64{1, 2, 3}, `arm "v1" has 3 counts, want 5`},
		{"long NPS", npsConfig(), make([]int64, 12), `arm "v1" has 12 counts, want 11`},
		{"negative", csatConfig(), []int64{1, 2, -3, 4, 5}, `arm "v1" has a negative count (-3) for score 3`},
		{"overflow", csatConfig(), []int64{math.MaxInt64, 1, 0, 0, 0}, `arm "v1" has too many responses`},
		{"bad config", Config{}, []int64{1}, "Config.Metric"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := EstimateArm(c.cfg, Arm{Name: "v1", Counts: c.counts})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got error %v, want one containing %q", err, c.want)
			}
		})
	}
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
		{"NaN drop", func(c *Config) { c.MaxDrop = math.NaN() }, []string{"Config.MaxDrop"}},
		{"confidence 1", func(c *Config) { c.Confidence = 1 }, []string{"Config.Confidence"}},
		{"confidence percent", func(c *Config) { c.Confidence = 95 }, []string{"Config.Confidence"}},
		{"min responses", func(c *Config) { c.MinResponses = 0 }, []string{"Config.MinResponses must be at least 1"}},
		{"all at once", func(c *Config) { *c = Config{Metric: CSAT} },
			[]string{"ScaleMin", "ScaleMax", "Confidence", "MinResponses"}},
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

func TestHalfWidth(t *testing.T) {
	// sqrt(2·1·2/1 · ln(sqrt(2)/0.05)), by hand.
	if got, err := HalfWidth(1, 1, 0.05); err != nil || math.Abs(got-3.6563948713638483) > 1e-12 {
		t.Errorf("HalfWidth(1, 1, 0.05) = %v, %v; want 3.656394871", got, err)
	}
	// The boundary is scale-equivariant: points or proportions give the same interval.
	a, _ := HalfWidth(0.0025, 0.0009, 0.05)
	b, _ := HalfWidth(25, 9, 0.05)
	if !near(100*a, b) {
		t.Errorf("not scale-equivariant: 100*%g != %g", a, b)
	}
	if got, err := HalfWidth(0, 9, 0.05); err != nil || got != 0 {
		t.Errorf("HalfWidth(0, ...) = %v, %v; want 0", got, err)
	}
	for _, bad := range [][3]float64{{-1, 9, 0.05}, {math.NaN(), 9, 0.05}, {math.Inf(1), 9, 0.05},
		{1, 0, 0.05}, {1, math.Inf(1), 0.05}, {1, 9, 0}, {1, 9, 1}, {1, 9, math.NaN()}} {
		if _, err := HalfWidth(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("HalfWidth%v: no error", bad)
		}
	}
	// Shrinks with n, is always wider than the fixed-horizon z interval (the
	// price of looking at every batch), and more so for a smaller alpha.
	prev := math.Inf(1)
	for n := 100.0; n <= 1e6; n *= 2 {
		v := 2550 / n // two CSAT-85 arms, points²
		h, _ := HalfWidth(v, 9, 0.05)
		if h >= prev {
			t.Errorf("n=%g: half-width %g did not shrink from %g", n, h, prev)
		}
		if z := 1.96 * math.Sqrt(v); h <= z {
			t.Errorf("n=%g: always-valid %g is not wider than z %g", n, h, z)
		}
		if h7, _ := HalfWidth(v, 9, 0.05/7); h7 <= h {
			t.Errorf("n=%g: Bonferroni-split alpha gave %g <= %g", n, h7, h)
		}
		prev = h
	}
}

func TestIntervalAlphaAndMixingVariance(t *testing.T) {
	cfg := csatConfig()
	if got := cfg.IntervalAlpha(1); !near(got, 0.05) {
		t.Errorf("one variant: %g, want 0.05", got)
	}
	if got := cfg.IntervalAlpha(7); !near(got, 0.05/7) {
		t.Errorf("seven variants: %g, want 0.05/7", got)
	}
	cfg.Minimum = ptr(70)
	if got := cfg.IntervalAlpha(3); !near(got, 0.05/6) {
		t.Errorf("three variants with minimum: %g, want 0.05/6", got)
	}
	if got := cfg.MixingVariance(); got != 9 {
		t.Errorf("tau² for MaxDrop 3: %g, want 9", got)
	}
	cfg.MaxDrop = 0
	if got := cfg.MixingVariance(); got != 1 {
		t.Errorf("tau² for MaxDrop 0: %g, want the 1-point floor", got)
	}
}

func finite(a Assessment) bool {
	for _, x := range []float64{a.Score, a.ScoreInterval.Lower, a.ScoreInterval.Upper, a.ControlScore,
		a.Difference, a.DifferenceInterval.Lower, a.DifferenceInterval.Upper} {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
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
		control, variant Arm
		want             Verdict
		explain          string
	}{
		{"few variant responses", csatConfig(), csatTally("control", 5000, 4250), csatTally("v", 99, 10),
			InsufficientData, "insufficient data after 99 responses (control 5000), need 100 per arm"},
		{"zero control responses", csatConfig(), csatTally("control", 0, 0), csatTally("v", 5000, 4250),
			InsufficientData, "insufficient data after 5000 responses (control 0)"},
		{"no responses at all", csatConfig(), csatTally("control", 0, 0), csatTally("v", 0, 0),
			InsufficientData, "CSAT 0.0 [0.0, 100.0] vs control 0.0"},
		{"large drop", csatConfig(), csatTally("control", 2000, 1700), csatTally("v", 2000, 1400),
			Inferior, "difference -15.0 [-"},
		{"equal, large", csatConfig(), csatTally("control", 20000, 17000), csatTally("v", 20000, 17000),
			NonInferior, "lies above -3 (max drop): non-inferior after 20000 responses"},
		{"equal, small", csatConfig(), csatTally("control", 200, 170), csatTally("v", 200, 170),
			Inconclusive, "straddles -3 (max drop): inconclusive after 200 responses"},
		{"better variant", csatConfig(), csatTally("control", 3000, 2550), csatTally("v", 3000, 2700),
			NonInferior, "difference 5.0"},
		{"minimum only", withMin(90, 3), csatTally("control", 20000, 17000), csatTally("v", 20000, 17000),
			Inferior, "lies above -3 (max drop) and the CSAT interval lies below 90 (minimum): inferior"},
		{"minimum met", withMin(70, 3), csatTally("control", 20000, 17000), csatTally("v", 20000, 17000),
			NonInferior, "and the CSAT interval lies above 70 (minimum): non-inferior"},
		{"minimum straddled", withMin(80, 10), csatTally("control", 20000, 17000), csatTally("v", 2000, 1600),
			Inconclusive, "lies above -10 (max drop) and the CSAT interval straddles 80 (minimum)"},
		// Zero plug-in variance: the floor keeps 10 perfect scores from deciding anything.
		{"degenerate all satisfied", smallN, csatTally("control", 10, 10), csatTally("v", 10, 10),
			Inconclusive, "CSAT 100.0 ["},
		{"degenerate all satisfied, many", csatConfig(), csatTally("control", 5000, 5000), csatTally("v", 5000, 5000),
			NonInferior, "non-inferior"},
		{"degenerate control, unhappy variant", smallN, csatTally("control", 10, 10), csatTally("v", 10, 0),
			Inconclusive, "difference -100.0 [-100.0,"},
		{"zero drop tolerated", func() Config { c := csatConfig(); c.MaxDrop = 0; return c }(),
			csatTally("control", 20000, 17000), csatTally("v", 20000, 16000), Inferior, "lies below 0 (max drop)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Evaluate(c.cfg, c.control, []Arm{c.variant})
			if err != nil {
				t.Fatal(err)
			}
			a := got[0]
			t.Log(a.Explanation)
			if a.Verdict != c.want {
				t.Errorf("verdict %s, want %s", a.Verdict, c.want)
			}
			if !strings.Contains(a.Explanation, c.explain) {
				t.Errorf("explanation %q does not contain %q", a.Explanation, c.explain)
			}
			if !finite(a) {
				t.Errorf("non-finite figure in %+v", a)
			}
			if a.ScoreInterval.Upper-a.ScoreInterval.Lower <= 0 {
				t.Errorf("zero-width score interval %+v", a.ScoreInterval)
			}
			if a.Variant != "v" || a.Responses != c.variant.Counts[0]+c.variant.Counts[3]+c.variant.Counts[4] {
				t.Errorf("wrong variant bookkeeping: %+v", a)
			}
		})
	}
}

func TestExplanationFormat(t *testing.T) {
	got, err := Evaluate(csatConfig(), csatTally("control", 1500, 1290), []Arm{csatTally("v", 1200, 888)})
	if err != nil {
		t.Fatal(err)
	}
	a := got[0]
	want := "CSAT 74.0 [" + num(a.ScoreInterval.Lower) + ", " + num(a.ScoreInterval.Upper) + "] vs control 86.0: difference -12.0 [" +
		num(a.DifferenceInterval.Lower) + ", " + num(a.DifferenceInterval.Upper) + "] lies below -3 (max drop): inferior after 1200 responses"
	if a.Explanation != want {
		t.Errorf("explanation\n got %q\nwant %q", a.Explanation, want)
	}
}

func TestIntervalsShrinkWithResponses(t *testing.T) {
	for _, cfg := range []Config{csatConfig(), npsConfig()} {
		prevScore, prevDiff := math.Inf(1), math.Inf(1)
		for k := int64(1); k <= 1024; k *= 2 {
			var control, variant Arm
			if cfg.Metric == CSAT {
				control, variant = csatTally("control", 100*k, 85*k), csatTally("v", 100*k, 80*k)
			} else {
				control = Arm{Name: "control", Counts: []int64{k, k, k, 2 * k, 2 * k, 3 * k, 5 * k, 15 * k, 20 * k, 20 * k, 30 * k}}
				variant = Arm{Name: "v", Counts: []int64{2 * k, k, k, 2 * k, 2 * k, 4 * k, 6 * k, 16 * k, 20 * k, 20 * k, 26 * k}}
			}
			got, err := Evaluate(cfg, control, []Arm{variant})
			if err != nil {
				t.Fatal(err)
			}
			a := got[0]
			ws, wd := a.ScoreInterval.Upper-a.ScoreInterval.Lower, a.DifferenceInterval.Upper-a.DifferenceInterval.Lower
			if ws >= prevScore || wd >= prevDiff {
				t.Errorf("%s, %d per arm: widths %.3f, %.3f did not shrink from %.3f, %.3f", cfg.Metric, 100*k, ws, wd, prevScore, prevDiff)
			}
			prevScore, prevDiff = ws, wd
		}
	}
}

// Splitting alpha over more variants widens every interval for the same tally.
func TestBonferroniAcrossVariants(t *testing.T) {
	cfg := csatConfig()
	control := csatTally("control", 3000, 2550)
	one, err := Evaluate(cfg, control, []Arm{csatTally("a", 3000, 2400)})
	if err != nil {
		t.Fatal(err)
	}
	three, err := Evaluate(cfg, control, []Arm{csatTally("a", 3000, 2400), csatTally("b", 3000, 2550), csatTally("c", 10, 9)})
	if err != nil {
		t.Fatal(err)
	}
	w1 := one[0].DifferenceInterval.Upper - one[0].DifferenceInterval.Lower
	w3 := three[0].DifferenceInterval.Upper - three[0].DifferenceInterval.Lower
	if w3 <= w1 {
		t.Errorf("width with 3 variants %g not wider than with 1: %g", w3, w1)
	}
	if three[0].Difference != one[0].Difference || three[2].Verdict != InsufficientData || three[1].Variant != "b" {
		t.Errorf("unexpected assessments: %+v", three)
	}
}

func TestEvaluateErrors(t *testing.T) {
	ok := csatTally("v", 10, 5)
	eight := make([]Arm, 8)
	for i := range eight {
		eight[i] = csatTally(string(rune('a'+i)), 10, 5)
	}
	for _, c := range []struct {
		name     string
		cfg      Config
		control  Arm
		variants []Arm
		want     string
	}{
		{"config", Config{Metric: CSAT}, csatTally("control", 10, 5), []Arm{ok}, "Config.ScaleMin"},
		{"no variants", csatConfig(), csatTally("control", 10, 5), nil, "need 1..7 variants"},
		{"too many variants", csatConfig(), csatTally("control", 10, 5), eight, "got 8"},
		{"duplicate", csatConfig(), csatTally("control", 10, 5), []Arm{ok, ok}, `arm name "v" is used twice`},
		{"control name reused", csatConfig(), csatTally("v", 10, 5), []Arm{ok}, `"v" is used twice`},
		{"unnamed", csatConfig(), csatTally("", 10, 5), []Arm{ok}, "needs a name"},
		{"control length", csatConfig(), Arm{Name: "control", Counts: []int64{1}}, []Arm{ok}, `arm "control" has 1 counts`},
		{"variant negative", csatConfig(), csatTally("control", 10, 5), []Arm{ok, {Name: "w", Counts: []int64{0, -1, 0, 0, 0}}},
			`arm "w" has a negative count`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Evaluate(c.cfg, c.control, c.variants)
			if err == nil || !strings.Contains(err.Error(), c.want) || got != nil {
				t.Errorf("got %v, %v; want an error containing %q", got, err, c.want)
			}
		})
	}
}

// Random tallies, including empty and one-category arms, never yield NaN or Inf.
func TestEvaluateAlwaysFinite(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		cfg := csatConfig()
		if i%2 == 1 {
			cfg = npsConfig()
		}
		cfg.MinResponses = 1 + r.Int64N(20)
		cfg.MaxDrop = float64(r.IntN(4))
		if r.IntN(2) == 0 {
			cfg.Minimum = ptr(float64(r.IntN(100)))
		}
		arm := func(name string) Arm {
			c := make([]int64, cfg.ScaleMax-cfg.ScaleMin+1)
			switch r.IntN(3) {
			case 0: // empty
			case 1: // one category
				c[r.IntN(len(c))] = r.Int64N(50)
			default:
				for j := range c {
					c[j] = r.Int64N(30)
				}
			}
			return Arm{Name: name, Counts: c}
		}
		got, err := Evaluate(cfg, arm("control"), []Arm{arm("a"), arm("b")})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range got {
			if !finite(a) || strings.Contains(a.Explanation, "NaN") || strings.Contains(a.Explanation, "Inf") {
				t.Fatalf("non-finite assessment %+v", a)
			}
		}
	}
}

func TestRequiredResponses(t *testing.T) {
	cfg := csatConfig()
	// Inferior calls get faster as the true drop grows past the margin...
	prev := int64(math.MaxInt64)
	for drop := 3.5; drop <= 40; drop += 0.5 {
		n, err := RequiredResponses(cfg, 85, drop)
		if err != nil {
			t.Fatal(err)
		}
		if n > prev {
			t.Errorf("drop %g needs %d, more than %d for a smaller drop", drop, n, prev)
		}
		if n < cfg.MinResponses {
			t.Errorf("drop %g: %d is below MinResponses", drop, n)
		}
		prev = n
	}
	// ...and NonInferior calls get slower as it approaches the margin.
	prev = 0
	for drop := -10.0; drop <= 2.5; drop += 0.5 {
		n, err := RequiredResponses(cfg, 85, drop)
		if err != nil {
			t.Fatal(err)
		}
		if n < prev {
			t.Errorf("drop %g needs %d, fewer than %d for a smaller drop", drop, n, prev)
		}
		prev = n
	}
	// It is the first n at which the boundary reaches the expected difference.
	n, _ := RequiredResponses(cfg, 85, 8)
	hw := cfg.halfWidthFunc(1)
	s2 := 1e4 * (0.85*0.15 + 0.77*0.23)
	if hw(s2/float64(n)) > 5 || hw(s2/float64(n-1)) <= 5 {
		t.Errorf("RequiredResponses(85, 8) = %d is not the first n with half-width <= 5", n)
	}
	// Saturates at MinResponses for huge effects.
	if n, _ := RequiredResponses(cfg, 95, 90); n != cfg.MinResponses {
		t.Errorf("a 90-point drop needs %d, want MinResponses %d", n, cfg.MinResponses)
	}
	for _, bad := range []struct{ baseline, drop float64 }{{85, 3}, {101, 5}, {85, 90}, {85, math.NaN()}, {math.Inf(1), 1}} {
		if _, err := RequiredResponses(cfg, bad.baseline, bad.drop); err == nil {
			t.Errorf("RequiredResponses(%g, %g): no error", bad.baseline, bad.drop)
		}
	}
	if _, err := RequiredResponses(Config{}, 85, 8); err == nil {
		t.Error("invalid config: no error")
	}
}

func TestFixedHorizonResponses(t *testing.T) {
	// (1.959964 + 0.841621)² · 1e4·(2·0.85·0.15) / 3² = 2223.85, by hand.
	n, err := FixedHorizonResponses(csatConfig(), 85, 0, 0.8)
	if err != nil || n != 2224 {
		t.Errorf("got %d, %v; want 2224", n, err)
	}
	// Continuous monitoring costs responses relative to the single look at 50% power.
	for _, drop := range []float64{-2, 0, 6, 8, 12} {
		fixed, _ := FixedHorizonResponses(csatConfig(), 85, drop, 0.5)
		seq, _ := RequiredResponses(csatConfig(), 85, drop)
		t.Logf("CSAT 85, drop %g: always-valid %d vs fixed-horizon %d at 50%% power (%.2fx)", drop, seq, fixed, float64(seq)/float64(fixed))
		if seq <= fixed {
			t.Errorf("drop %g: always-valid plan %d not above fixed-horizon %d", drop, seq, fixed)
		}
	}
	for _, p := range []float64{0.4, 1, math.NaN()} {
		if _, err := FixedHorizonResponses(csatConfig(), 85, 8, p); err == nil {
			t.Errorf("power %g: no error", p)
		}
	}
	if _, err := FixedHorizonResponses(csatConfig(), 85, 3, 0.8); err == nil {
		t.Error("drop at the margin: no error")
	}
}

func BenchmarkEvaluate8Variants(b *testing.B) {
	cfg := npsConfig()
	control := Arm{Name: "control", Counts: []int64{10, 10, 10, 20, 20, 30, 50, 150, 200, 200, 300}}
	variants := make([]Arm, MaxVariants)
	for i := range variants {
		c := append([]int64(nil), control.Counts...)
		c[i] += int64(10 * i)
		variants[i] = Arm{Name: "variant-" + string(rune('a'+i)), Counts: c}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Evaluate(cfg, control, variants); err != nil {
			b.Fatal(err)
		}
	}
}
