//go:build bench

package stats

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/rapport-dev/rapport/internal/analysis"
	rs "github.com/rapport-dev/rapport/internal/rolloutsim"
)

// compareHorizon is the responses of the segment of a comparison run
// (20,000 per arm), shortCanary a short canary's responses per arm.
const (
	compareHorizon = 40_000
	shortCanary    = 2_000
)

// compareCase is one case of the comparison with static thresholds.
type compareCase struct {
	label string
	// drop is the variant's true drop below the control, NaN when it is
	// not constant (the dip).
	drop             float64
	truth            string // the right call: "roll back", "keep" or "either"
	control, variant rs.Truth
}

type compareMetric struct {
	name      string
	cfg       analysis.Config
	baseline  float64
	passives  float64 // NPS, percent
	threshold float64 // baseline - maxDrop
	at        func(drop float64) rs.Shares
	cases     []compareCase
	intro     string
}

func compareMetrics() []compareMetric {
	csatAt := func(drop float64) rs.Shares { return rs.CSAT(85 - drop) }
	npsAt := func(drop float64) rs.Shares { return rs.NPS(50-drop/2, 15+drop/2) }
	mk := func(m compareMetric, drops ...float64) compareMetric {
		for _, d := range drops {
			truth := "keep"
			switch {
			case d > m.cfg.MaxDrop:
				truth = "roll back"
			case d == m.cfg.MaxDrop:
				truth = "either"
			}
			m.cases = append(m.cases, compareCase{
				label: variantLabel(m.at(d).Score(), d, m.cfg.MaxDrop), drop: d, truth: truth,
				control: rs.Constant(m.at(0)), variant: rs.Constant(m.at(d)),
			})
		}
		return m
	}
	c := mk(compareMetric{name: "CSAT", cfg: csat(3, 1), baseline: 85, threshold: 82, at: csatAt,
		intro: "CSAT 1..5, top-2-box, control 85, maxDrop 3"}, 0, 3, 5, 8, 12)
	// A seasonal dip that hits both arms: the variant is as good as the
	// control throughout, but both fall from 85 to 80 between 1,000 and
	// 3,000 responses per arm.
	dip := rs.Linear(rs.CSAT(85), rs.CSAT(80), 2_000, 6_000)
	c.cases = append(c.cases, compareCase{label: "85 → 80, as the control (a seasonal dip of both arms)",
		drop: math.NaN(), truth: "keep", control: dip, variant: dip})
	n := mk(compareMetric{name: "NPS", cfg: nps(5, 1), baseline: 35, passives: 35, threshold: 30, at: npsAt,
		intro: "NPS control 35 (50% promoters, 35% passives, 15% detractors), maxDrop 5; a drop of d moves d/2 points from promoters to detractors"},
		0, 5, 8, 12)
	return []compareMetric{c, n}
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

// compareResult is one case's figures.
type compareResult struct {
	c                          compareCase
	runs                       int
	rolled, cleared, undecided int // first verdict
	toRollBack, toClear        []int64
	plan, fixed                int64 // per arm, -1 when not defined
	ever, everShort            rs.Rate
	everAt                     []int64
	rule, ruleShort            [nRules]rs.Rate
	ruleAt                     [nRules][]int64
	planErr                    error
}

// thresholds: Rapport next to the static-threshold canary rules of Argo
// Rollouts and Flagger, on the same answers.
func (s *suite) thresholds(t *testing.T) string {
	var b strings.Builder
	fmt.Fprintf(&b, `## 8. Rapport and static-threshold canary rules, on the same answers

Balanced arms (50%%), up to %s responses per arm, constant truths unless
stated. Within a metric every case uses the same seed, so the answers differ
only where the truths do (before the dip, the dip case's answers are those
of the no-drop case).

- **Rapport**, two readings: *first verdict* (a run ends at its first
  Inferior, rolled back, or NonInferior, cleared: what a canary step does),
  and *never stops* (judged until %s per arm whatever it said before: the
  share ever rolled back is the strictest false-alarm figure, and the one
  comparable to a rule that runs for the whole canary).
- **Static threshold** (Argo Rollouts analysis, Flagger metric checks):
  every %d responses of the variant, its score over its last W responses (W
  = 100 or 500; all so far while fewer exist) is compared with a constant,
  the control's expected score minus maxDrop; a check fails when the score
  is below it. ×1: roll back at the first failed check (Argo failureLimit 0,
  Flagger threshold 1); ×5 in a row: after 5 consecutive failures (a pass
  resets the count); ×5 total: at the 5th failure in total, as Argo's
  failureLimit 4 and Flagger's threshold 5 count. The rules never look at the
  control. A check runs at the first look at or after each 100th response of
  the variant, hence rollbacks at 102 or 304 responses.
- Late regressions (the case where a windowed rule used to beat Rapport) are
  in section 4, with these rules on the same answers.
`, count(compareHorizon/2), count(compareHorizon/2), checkEvery)
	for _, m := range compareMetrics() {
		seed := s.seedFor("thresholds/" + m.name)
		var results []compareResult
		for _, c := range m.cases {
			sc := scenario(m.cfg, []int32{50}, 1<<40, compareHorizon, c.control, c.variant)
			sc.Seed = seed
			ws := s.watchAll(t, "thresholds/"+m.name+"/"+c.label, sc, m.threshold, 0, false)
			r := s.compareFigures(m, c, ws)
			if r.planErr != nil {
				t.Fatalf("%s %s: %v", m.name, c.label, r.planErr)
			}
			results = append(results, r)
		}
		b.WriteString(renderCompare(m, results))
	}
	return b.String()
}

func (s *suite) compareFigures(m compareMetric, c compareCase, ws []*watch) compareResult {
	r := compareResult{c: c, runs: len(ws), plan: -1, fixed: -1}
	for _, w := range ws {
		switch w.first {
		case analysis.Inferior:
			r.rolled++
			r.toRollBack = append(r.toRollBack, w.firstAt)
		case analysis.NonInferior:
			r.cleared++
			r.toClear = append(r.toClear, w.firstAt)
		default:
			r.undecided++
		}
		hit(&r.ever, w.inferiorAt >= 0)
		hit(&r.everShort, w.inferiorAt >= 0 && w.inferiorAt <= shortCanary)
		if w.inferiorAt >= 0 {
			r.everAt = append(r.everAt, w.inferiorAt)
		}
		for i, at := range w.ruleAt {
			hit(&r.rule[i], at >= 0)
			hit(&r.ruleShort[i], at >= 0 && at <= shortCanary)
			if at >= 0 {
				r.ruleAt[i] = append(r.ruleAt[i], at)
			}
		}
	}
	if !math.IsNaN(c.drop) && c.drop != m.cfg.MaxDrop {
		p, err := analysis.PlanComparison(m.cfg, analysis.PlanInput{Baseline: m.baseline, Drop: c.drop,
			Passives: m.passives, VariantWeight: 50, ControlWeight: 50})
		r.planErr = err
		if err == nil {
			r.plan = p.Median.Variant
			r.fixed = (p.FixedHorizon + 1) / 2
		}
	}
	return r
}

func q3(xs []int64, n int) string {
	return count(quantile(xs, n, 0.5)) + " / " + count(quantile(xs, n, 0.8)) + " / " + count(quantile(xs, n, 0.9))
}

func pct(k, n int) string { return fmt.Sprintf("%.1f%%", 100*float64(k)/float64(n)) }

func renderCompare(m compareMetric, results []compareResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n### %s\n\n%s; static threshold %s.\n\n", m.name, m.intro, fnum(m.threshold))
	b.WriteString("Rapport, first verdict:\n\n")
	b.WriteString(header("Variant "+m.name+" (true drop)", "Right call", "Rolled back", "Cleared",
		"Undecided at "+count(compareHorizon/2), "To roll back: median / p80 / p90", "To clear: median / p80 / p90",
		"Planned median (PlanComparison)", "Fixed horizon, 80% power"))
	for _, r := range results {
		plan, fixed := "—", "—"
		if r.plan >= 0 {
			plan, fixed = count(r.plan), count(r.fixed)
		}
		if r.c.drop == m.cfg.MaxDrop {
			plan, fixed = "∞ (drop = margin)", "∞"
		}
		b.WriteString(row(r.c.label, r.c.truth, pct(r.rolled, r.runs), pct(r.cleared, r.runs), pct(r.undecided, r.runs),
			q3(r.toRollBack, r.runs), q3(r.toClear, r.runs), plan, fixed))
	}
	b.WriteString(`
Responses per arm. The planned median is the planner's (section 7), for the
right call; the fixed horizon is the responses per arm a single z-test at the
same one-sided error rate needs for 80% power (it may look only once). A drop
of exactly maxDrop sits on the margin, where either verdict is wrong by
construction: the engine keeps it Inconclusive (its error bounds cover both
verdicts there).

`)
	cols := []string{"Variant " + m.name + " (true drop)", "Right call", "Rapport (never stops)"}
	for _, r := range rules {
		cols = append(cols, r.label)
	}
	table := func(title string, cell func(r compareResult, i int) string) {
		b.WriteString(title + "\n\n" + header(cols...))
		for _, r := range results {
			cells := []string{r.c.label, r.c.truth, cell(r, -1)}
			for i := range rules {
				cells = append(cells, cell(r, i))
			}
			b.WriteString(row(cells...))
		}
		b.WriteString("\n")
	}
	table(fmt.Sprintf("Share of runs rolled back within %s responses per arm:", count(compareHorizon/2)),
		func(r compareResult, i int) string {
			if i < 0 {
				return r.ever.String()
			}
			return r.rule[i].String()
		})
	table(fmt.Sprintf("Share of runs rolled back within the first %s responses per arm (a short canary):", count(shortCanary)),
		func(r compareResult, i int) string {
			if i < 0 {
				return fmt.Sprintf("%.1f%%", r.everShort.Value())
			}
			return fmt.Sprintf("%.1f%%", r.ruleShort[i].Value())
		})
	table("Responses per arm to roll back, median / p90 (over all runs):",
		func(r compareResult, i int) string {
			xs := r.everAt
			if i >= 0 {
				xs = r.ruleAt[i]
			}
			return count(quantile(xs, r.runs, 0.5)) + " / " + count(quantile(xs, r.runs, 0.9))
		})
	return b.String()
}
