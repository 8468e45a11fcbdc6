//go:build bench

package stats

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rapport-dev/rapport/internal/analysis"
	rs "github.com/rapport-dev/rapport/internal/rolloutsim"
)

// planner: analysis.PlanComparison (what kubectl cx analyze --plan prints)
// against the simulated median responses to the right verdict, at balanced
// and unbalanced weights.
func (s *suite) planner(t *testing.T) string {
	const section = "Planner"
	c3, n5 := csat(3, 1), nps(5, 1)
	type planCase struct {
		name string
		cfg  analysis.Config
		in   analysis.PlanInput
		ctl  rs.Shares
		vr   rs.Shares
	}
	npsAt := func(drop float64) rs.Shares { return rs.NPS(40-drop/2, 20+drop/2) }
	cases := []planCase{
		{"CSAT 85, drop 8, variant at 50%", c3, analysis.PlanInput{Baseline: 85, Drop: 8, VariantWeight: 50, ControlWeight: 50}, rs.CSAT(85), rs.CSAT(77)},
		{"CSAT 85, drop 8, variant at 25%", c3, analysis.PlanInput{Baseline: 85, Drop: 8, VariantWeight: 25, ControlWeight: 75}, rs.CSAT(85), rs.CSAT(77)},
		{"CSAT 85, drop 8, variant at 5%", c3, analysis.PlanInput{Baseline: 85, Drop: 8, VariantWeight: 5, ControlWeight: 95}, rs.CSAT(85), rs.CSAT(77)},
		{"CSAT 85, drop 5, variant at 50%", c3, analysis.PlanInput{Baseline: 85, Drop: 5, VariantWeight: 50, ControlWeight: 50}, rs.CSAT(85), rs.CSAT(80)},
		{"CSAT 85, no drop, variant at 50%", c3, analysis.PlanInput{Baseline: 85, Drop: 0, VariantWeight: 50, ControlWeight: 50}, rs.CSAT(85), rs.CSAT(85)},
		{"CSAT 85, no drop, variant at 25%", c3, analysis.PlanInput{Baseline: 85, Drop: 0, VariantWeight: 25, ControlWeight: 75}, rs.CSAT(85), rs.CSAT(85)},
		{"CSAT 85, no drop, variant at 5%", c3, analysis.PlanInput{Baseline: 85, Drop: 0, VariantWeight: 5, ControlWeight: 95}, rs.CSAT(85), rs.CSAT(85)},
		{"CSAT 85, no drop, 2 variants at 48% (control 4%)", c3, analysis.PlanInput{Baseline: 85, Drop: 0, VariantWeight: 48, ControlWeight: 4, Variants: 2}, rs.CSAT(85), rs.CSAT(85)},
		{"NPS 20 (40% passives), no drop, variant at 50%", n5, analysis.PlanInput{Baseline: 20, Drop: 0, Passives: 40, VariantWeight: 50, ControlWeight: 50}, npsAt(0), npsAt(0)},
		{"NPS 20 (40% passives), drop 12, variant at 50%", n5, analysis.PlanInput{Baseline: 20, Drop: 12, Passives: 40, VariantWeight: 50, ControlWeight: 50}, npsAt(0), npsAt(12)},
	}
	var b strings.Builder
	b.WriteString(`## 7. Planning

analysis.PlanComparison (what ` + "`kubectl cx analyze --plan`" + ` prints) simulates the
whole-run test on the normal approximation; here it is checked against the
engine itself, response by response: the median responses of the variant to
the right verdict (Inferior when the drop exceeds maxDrop, else NonInferior),
at constant weights, a run ending once every variant has had a verdict.

`)
	b.WriteString(header("Case", "Planned median / p90 (variant responses)", "Simulated median / p90",
		"Planned ÷ simulated median", "Right verdict reached", "Wrong verdict", "Within 10%"))
	for _, c := range cases {
		p, err := analysis.PlanComparison(c.cfg, c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		k := max(c.in.Variants, 1)
		horizon := max(2*p.P90.Segment, 10_000)
		horizon = (horizon + lookEvery - 1) / lookEvery * lookEvery
		sc := constant(c.cfg, c.in.VariantWeight, horizon, c.ctl, repeat(c.vr, k)...)
		sc.StopAtFirstVerdict = true
		cnt := countOutcomes(first(play[struct{}](t, s, "planner/"+c.name, sc, nil, nil)))
		right, wrong := cnt.nonInferiorAt, cnt.inferior
		reached := cnt.nonInferior
		if p.Verdict == analysis.Inferior {
			right, wrong, reached = cnt.inferiorAt, cnt.nonInferior, cnt.inferior
		}
		n := cnt.inferior.N // per variant
		sim := quantile(right, n, 0.5)
		r := float64(p.Median.Variant) / float64(sim)
		ok := sim > 0 && r >= 0.9 && r <= 1.1
		s.check(t, section, c.name+": planned median within 10% of the simulated one",
			fmt.Sprintf("%s planned, %s simulated (%.2f×)", count(p.Median.Variant), count(sim), r), "0.90–1.10×", ok)
		b.WriteString(row(c.name, count(p.Median.Variant)+" / "+count(p.P90.Variant), q2(right, n),
			fmt.Sprintf("%.2f×", r), reached.String(), wrong.String(), passMark(ok)))
	}
	b.WriteString(`
Runs last twice the planned p90 (at least 10,000 responses of the segment).
Medians and p90s are over all variants of all runs. *Wrong verdict*: the
share of variants called the wrong way; a run ends once every variant has a
verdict, so such a variant counts as never reaching the right one.
`)
	return b.String()
}
