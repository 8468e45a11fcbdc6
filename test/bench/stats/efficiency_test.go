//go:build bench

package stats

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rapport-dev/rapport/internal/analysis"
)

const (
	defaultRuns = 2000
	defaultSeed = 20260801
	replayRuns  = 4 // runs of each case replayed sequentially to check determinism
)

func csatSetup(seed uint64) *metricSetup {
	cfg := analysis.Config{Metric: analysis.CSAT, ScaleMin: 1, ScaleMax: 5, SatisfiedAtOrAbove: 4,
		MaxDrop: 3, Confidence: 0.95, MinResponses: 100}
	ctl := shares{pos: 0.85}
	m := &metricSetup{name: "CSAT", cfg: cfg, baseline: 85, threshold: 85 - cfg.MaxDrop, seed: seed}
	for _, drop := range []float64{0, 3, 5, 8, 12} {
		v := shares{pos: (85 - drop) / 100}
		m.scenarios = append(m.scenarios, scenario{
			label: variantLabel(v.score(), drop, cfg.MaxDrop), drop: drop, truth: truthOf(drop, cfg.MaxDrop),
			control: ctl, variant: v, ctlCuts: constant(ctl), varCuts: constant(v),
		})
	}
	// A seasonal dip that hits both arms: the variant is as good as the control
	// throughout, but both fall from 85 to 80 between responses 1,000 and 3,000.
	dip := drifting(ctl, driftEnd, driftFrom, driftTo)
	m.scenarios = append(m.scenarios, scenario{
		label: "85 → 80, as the control (both drift)", drop: math.NaN(), truth: "keep",
		control: ctl, variant: ctl, ctlCuts: dip, varCuts: dip,
	})
	return m
}

// The seasonal dip: both arms move from the control's CSAT to driftEnd
// between the driftFrom-th and the driftTo-th response per arm.
const driftFrom, driftTo = 1000, 3000

var driftEnd = shares{pos: 0.80}

// npsSetup: control 50% promoters, 35% passives, 15% detractors (NPS 35); a
// drop of d points moves d/2 points from promoters to detractors.
func npsSetup(seed uint64) *metricSetup {
	cfg := analysis.Config{Metric: analysis.NPS, ScaleMin: 0, ScaleMax: 10,
		MaxDrop: 5, Confidence: 0.95, MinResponses: 100}
	ctl := shares{pos: 0.50, neg: 0.15}
	m := &metricSetup{name: "NPS", cfg: cfg, baseline: 35, threshold: 35 - cfg.MaxDrop, seed: seed}
	for _, drop := range []float64{0, 5, 8, 12} {
		v := shares{pos: ctl.pos - drop/200, neg: ctl.neg + drop/200}
		m.scenarios = append(m.scenarios, scenario{
			label: variantLabel(v.score(), drop, cfg.MaxDrop), drop: drop, truth: truthOf(drop, cfg.MaxDrop),
			control: ctl, variant: v, ctlCuts: constant(ctl), varCuts: constant(v),
		})
	}
	return m
}

func variantLabel(score, drop, maxDrop float64) string {
	switch drop {
	case 0:
		return fmt.Sprintf("%s (no drop)", fnum(score))
	case maxDrop:
		return fmt.Sprintf("%s (drop %s = margin)", fnum(score), fnum(drop))
	default:
		return fmt.Sprintf("%s (drop %s)", fnum(score), fnum(drop))
	}
}

func truthOf(drop, maxDrop float64) string {
	switch {
	case drop > maxDrop:
		return "roll back"
	case drop < maxDrop:
		return "keep"
	default:
		return "either"
	}
}

// quantiles of stopping points, nearest rank; never when the rank falls on a
// run that never stopped.
type quantiles struct{ median, p80, p90 int64 }

func quantilesOf(ns []int64) quantiles {
	s := slices.Clone(ns)
	slices.Sort(s)
	at := func(q float64) int64 { return s[int(math.Ceil(q*float64(len(s))))-1] }
	return quantiles{at(0.5), at(0.8), at(0.9)}
}

// stopStats is how one rule stopped over all runs of a case.
type stopStats struct {
	byHorizon, byShort int // runs rolled back by horizon and by shortHorizon
	q                  quantiles
}

func stopStatsOf(ns []int64) stopStats {
	var s stopStats
	for _, n := range ns {
		if n <= horizon {
			s.byHorizon++
		}
		if n <= shortHorizon {
			s.byShort++
		}
	}
	s.q = quantilesOf(ns)
	return s
}

// summary is one case over all runs.
type summary struct {
	sc                               *scenario
	runs                             int
	inferior, nonInferior, undecided int
	rollback                         quantiles // first-verdict reading, never unless Inferior
	rollbackGiven                    int64     // median among runs that rolled back
	clearQ                           quantiles // never unless NonInferior
	rapport                          stopStats // never-stops reading
	rule                             [nRules]stopStats
	plan, fixed80, fixed90           int64 // 0 when not defined
	split80, split90                 int64 // fixed horizon with the simulated variances
	checked                          int
}

// checkRuns verifies every invariant of the runs of one case and summarises
// them.
func checkRuns(m *metricSetup, sc *scenario, res []runResult) (summary, error) {
	s := summary{sc: sc, runs: len(res)}
	rollback := make([]int64, len(res))
	clearN := make([]int64, len(res))
	inferior := make([]int64, len(res))
	var ruleNs [nRules][]int64
	for i := range ruleNs {
		ruleNs[i] = make([]int64, len(res))
	}
	onGrid := func(n, every, lo int64) bool { return n == never || (n%every == 0 && n >= lo && n <= horizon) }
	var errs []error
	bad := func(run int, format string, args ...any) {
		if len(errs) < 10 {
			errs = append(errs, fmt.Errorf("%s %s run %d: %s", m.name, sc.label, run, fmt.Sprintf(format, args...)))
		}
	}
	for i, r := range res {
		if r.err != "" {
			if len(errs) < 10 {
				errs = append(errs, errors.New(r.err))
			}
			continue
		}
		rollback[i], clearN[i], inferior[i] = never, never, r.inferiorN
		if r.checked < 1 {
			bad(i, "no look was cross-checked with analysis.Evaluate")
		}
		if !onGrid(r.firstN, step, m.cfg.MinResponses) || r.firstN == never {
			bad(i, "first verdict at %d responses, off the look grid", r.firstN)
		}
		if !onGrid(r.inferiorN, step, m.cfg.MinResponses) {
			bad(i, "first Inferior at %d responses, off the look grid", r.inferiorN)
		}
		switch r.first {
		case analysis.Inferior:
			s.inferior++
			rollback[i] = r.firstN
			if r.inferiorN != r.firstN {
				bad(i, "stopped Inferior at %d but first Inferior at %d", r.firstN, r.inferiorN)
			}
		case analysis.NonInferior:
			s.nonInferior++
			clearN[i] = r.firstN
			if r.inferiorN <= r.firstN {
				bad(i, "cleared at %d but Inferior at %d", r.firstN, r.inferiorN)
			}
		case analysis.Inconclusive:
			s.undecided++
			if r.firstN != horizon || r.inferiorN != never {
				bad(i, "undecided but stopped at %d, first Inferior at %d", r.firstN, r.inferiorN)
			}
		default:
			bad(i, "unexpected outcome %q", r.first)
		}
		for k, n := range r.ruleN {
			ruleNs[k][i] = n
			if !onGrid(n, checkEvery, int64(rules[k].limit)*checkEvery) {
				bad(i, "rule %s rolled back at %d, off the check grid", rules[k].label, n)
			}
		}
		// Same window: the first failed check comes no later than the 5th in
		// total, which comes no later than the 5th in a row.
		for k := 0; k+2 < nRules; k += 3 {
			if !(r.ruleN[k] <= r.ruleN[k+2] && r.ruleN[k+2] <= r.ruleN[k+1]) {
				bad(i, "window %d: limit 1 at %d, 5 in total at %d, 5 in a row at %d",
					rules[k].window, r.ruleN[k], r.ruleN[k+2], r.ruleN[k+1])
			}
		}
		s.checked += r.checked
	}
	if got := s.inferior + s.nonInferior + s.undecided; got != len(res) && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%s %s: outcomes add up to %d runs, want %d", m.name, sc.label, got, len(res)))
	}
	if len(errs) > 0 {
		return s, errors.Join(errs...)
	}
	s.rollback, s.clearQ, s.rapport = quantilesOf(rollback), quantilesOf(clearN), stopStatsOf(inferior)
	given := slices.DeleteFunc(slices.Clone(rollback), func(n int64) bool { return n == never })
	s.rollbackGiven = never
	if len(given) > 0 {
		s.rollbackGiven = quantilesOf(given).median
	}
	for k := range rules {
		s.rule[k] = stopStatsOf(ruleNs[k])
	}
	qs := []quantiles{s.rollback, s.clearQ, s.rapport.q}
	for _, r := range s.rule {
		qs = append(qs, r.q)
	}
	for _, q := range qs {
		if !(q.median <= q.p80 && q.p80 <= q.p90) {
			return s, fmt.Errorf("%s %s: quantiles out of order: %+v", m.name, sc.label, q)
		}
	}
	if s.rapport.byHorizon < s.inferior {
		return s, fmt.Errorf("%s %s: %d runs ever Inferior but %d stopped Inferior", m.name, sc.label, s.rapport.byHorizon, s.inferior)
	}
	err := s.planFigures(m)
	return s, err
}

// planFigures fills the planner and fixed-horizon figures for the right call.
func (s *summary) planFigures(m *metricSetup) error {
	sc := s.sc
	if math.IsNaN(sc.drop) || sc.drop == m.cfg.MaxDrop {
		return nil
	}
	var err error
	if s.plan, err = analysis.RequiredResponses(m.cfg, m.baseline, sc.drop); err != nil {
		return err
	}
	if s.fixed80, err = analysis.FixedHorizonResponses(m.cfg, m.baseline, sc.drop, 0.8); err != nil {
		return err
	}
	if s.fixed90, err = analysis.FixedHorizonResponses(m.cfg, m.baseline, sc.drop, 0.9); err != nil {
		return err
	}
	// The same formula with the simulated arms' own variances: identical for
	// CSAT, smaller for NPS, where FixedHorizonResponses assumes no passives.
	z := func(p float64) float64 { return math.Sqrt2 * math.Erfinv(2*p-1) }
	split := func(power float64) int64 {
		k := z(1-m.cfg.IntervalAlpha(1)/2) + z(power)
		d := math.Abs(sc.drop - m.cfg.MaxDrop)
		return int64(math.Ceil(k * k * 1e4 * (sc.control.perResponse() + sc.variant.perResponse()) / (d * d)))
	}
	s.split80, s.split90 = split(0.8), split(0.9)
	if m.cfg.Metric == analysis.CSAT && (absDiff(s.split80, s.fixed80) > 1 || absDiff(s.split90, s.fixed90) > 1) {
		return fmt.Errorf("%s %s: fixed horizon %d/%d from the simulated variances, FixedHorizonResponses %d/%d",
			m.name, sc.label, s.split80, s.split90, s.fixed80, s.fixed90)
	}
	return nil
}

func absDiff(a, b int64) int64 { return max(a-b, b-a) }

func envInt(t *testing.T, name string, def uint64) uint64 {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func TestEfficiency(t *testing.T) {
	runs := int(envInt(t, "BENCH_RUNS", defaultRuns))
	seed := envInt(t, "BENCH_SEED", defaultSeed)
	start := time.Now()
	var sections []string
	for _, m := range []*metricSetup{csatSetup(seed), npsSetup(seed + 1)} {
		if err := m.cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		var sums []summary
		for i := range m.scenarios {
			sc := &m.scenarios[i]
			began := time.Now()
			res := simulateAll(m, sc, runs)
			s, err := checkRuns(m, sc, res)
			if err != nil {
				t.Fatal(err)
			}
			w := newWorker(m)
			for run := range min(replayRuns, runs) {
				if again := w.simulate(sc, run); again != res[run] {
					t.Fatalf("%s %s run %d is not reproducible: %+v, then %+v", m.name, sc.label, run, res[run], again)
				}
			}
			sums = append(sums, s)
			t.Logf("%s %s: %d runs in %v (%d looks cross-checked with Evaluate)",
				m.name, sc.label, runs, time.Since(began).Round(time.Millisecond), s.checked)
		}
		sections = append(sections, renderMetric(m, sums))
	}
	report := renderReport(runs, seed, sections)
	t.Logf("total %v on GOMAXPROCS=%d\n\n%s", time.Since(start).Round(time.Millisecond), runtimeProcs(), report)
	if out := os.Getenv("BENCH_OUT"); out != "" {
		path, err := outPath(out)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}
}

// outPath resolves a relative BENCH_OUT against the module root: go test runs
// in the package directory, but the documented paths are from the root.
func outPath(p string) (string, error) {
	if filepath.IsAbs(p) {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, p), nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("BENCH_OUT=%s: no go.mod above %s", p, dir)
		}
	}
}

// Formatting.

func fnum(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }

func pct(k, n int) string { return fmt.Sprintf("%.1f%%", 100*float64(k)/float64(n)) }

// count formats a number of responses with thousands separators; never is "—".
func count(n int64) string {
	if n == never {
		return "—"
	}
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func qcell(q quantiles, all bool) string {
	if all {
		return count(q.median) + " / " + count(q.p80) + " / " + count(q.p90)
	}
	return count(q.median) + " / " + count(q.p90)
}

func row(cells ...string) string { return "| " + strings.Join(cells, " | ") + " |\n" }

func header(cells ...string) string {
	seps := make([]string, len(cells))
	for i := range seps {
		seps[i] = "---"
	}
	return row(cells...) + row(seps...)
}
