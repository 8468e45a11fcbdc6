//go:build bench

package stats

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rapport-dev/rapport/internal/analysis"
	rs "github.com/rapport-dev/rapport/internal/rolloutsim"
)

// lateStarts are when the 8-point drop begins, in responses per arm (the
// variant's truth changes after twice as many responses of the segment).
var lateStarts = []int64{0, 2_000, 5_000, 10_000, 20_000, 40_000}

// lateAfter is how many responses per arm a run lasts after the drop at most.
const lateAfter = 20_000

// lateResult is one start's figures: for the engine and every rule, the
// share of runs rolled back before the drop (false) and after it, and the
// responses per arm after the drop to roll back (all runs; never counted as
// never).
type lateResult struct {
	start                int64
	before, after        rs.Rate
	afterN               []int64
	recent               int // rollbacks after the drop by the recent-evidence rule
	ruleBefore, ruleAftr [nRules]rs.Rate
	ruleN                [nRules][]int64
}

func (r lateResult) median() int64          { return quantile(r.afterN, r.after.N, 0.5) }
func (r lateResult) p90() int64             { return quantile(r.afterN, r.after.N, 0.9) }
func (r lateResult) ruleMedian(i int) int64 { return quantile(r.ruleN[i], r.after.N, 0.5) }

// late: an 8-point drop (CSAT 85 -> 77) that begins after 0 to 40,000
// responses per arm, at balanced arms; the engine and the static-threshold
// rules judge the same answers. Evidence accumulates, so good answers before
// the drop dilute it; the recent-evidence windows are there to catch it.
func (s *suite) late(t *testing.T) string {
	const section = "Late regressions"
	var results []lateResult
	for _, start := range lateStarts {
		dropAt := 2 * start // responses of the segment
		sc := scenario(csat(3, 1), []int32{50}, 1<<40, dropAt+2*lateAfter, rs.Constant(rs.CSAT(85)),
			rs.Shift(rs.Constant(rs.CSAT(85)), -8, dropAt))
		ws := s.watchAll(t, fmt.Sprintf("late/%d", start), sc, 82, dropAt, false)
		r := lateResult{start: start}
		for _, w := range ws {
			// A rollback without any answer of the variant from after the
			// drop is a false one (atDrop < 0: the run ended before it).
			at := func(n int64) (before, after bool, since int64) {
				switch {
				case n < 0:
					return false, false, -1
				case w.atDrop < 0 || n <= w.atDrop:
					return true, false, -1
				}
				return false, true, n - w.atDrop
			}
			b, a, since := at(w.inferiorAt)
			hit(&r.before, b)
			hit(&r.after, a)
			if a {
				r.afterN = append(r.afterN, since)
				if w.inferiorRule == analysis.RuleRecentMaxDrop {
					r.recent++
				}
			}
			for i := range rules {
				b, a, since := at(w.ruleAt[i])
				hit(&r.ruleBefore[i], b)
				hit(&r.ruleAftr[i], a)
				if a {
					r.ruleN[i] = append(r.ruleN[i], since)
				}
			}
		}
		results = append(results, r)
	}
	fromStart := results[0].median()
	s.fromStart8 = fromStart

	var b strings.Builder
	fmt.Fprintf(&b, `## 4. Regressions that begin mid-run

The variant is as good as the control (CSAT 85) until the drop, then 8
points worse (77), at balanced arms (50%%); a run lasts until %s responses
per arm after the drop. Good answers before the drop dilute the whole-run
comparison; the recent-evidence windows (a window opens every %s effective
responses, the newest %d are judged, window k spends a 1/(k(k+1)) share of
%g%% of the rollback budget) judge only the answers after them.

`, count(lateAfter), count(csat(3, 1).WindowSpacing()), analysis.MaxWindows, 100*analysis.RecentShare)
	b.WriteString(header("Drop begins after (responses per arm)", "Rolled back before the drop (false)",
		"Rolled back after the drop", "Responses per arm after the drop: median / p90",
		"× the median from the start", "By the recent-evidence test"))
	for _, r := range results {
		byRecent := "—"
		if r.after.Count > 0 {
			byRecent = fmt.Sprintf("%.0f%%", 100*float64(r.recent)/float64(r.after.Count))
		}
		start := count(r.start)
		if r.start == 0 {
			start = "0 (from the start)"
		}
		b.WriteString(row(start, r.before.String(), r.after.String(), count(r.median())+" / "+count(r.p90()),
			ratio(r.median(), fromStart), byRecent))
	}
	b.WriteString(`
A rollback is *before the drop* when the look that made it had no answer of
the variant from after the drop. Medians and p90s are over all runs (a run rolled back
before the drop, or never, counts as never).

Static-threshold rules on the same answers (threshold 82 = 85 − maxDrop; see
section 8): median responses per arm after the drop to roll back, and in
brackets the share of runs they had already rolled back before it (false
alarms: the rollout would have ended there).

`)
	cols := []string{"Drop begins after (per arm)", "Rapport"}
	for _, r := range rules {
		cols = append(cols, r.label)
	}
	b.WriteString(header(cols...))
	for _, r := range results {
		cells := []string{count(r.start), fmt.Sprintf("%s (%.1f%%)", count(r.median()), r.before.Value())}
		for i := range rules {
			cells = append(cells, fmt.Sprintf("%s (%.1f%%)", count(r.ruleMedian(i)), r.ruleBefore[i].Value()))
		}
		b.WriteString(row(cells...))
	}

	for _, r := range results {
		what := fmt.Sprintf("8-point drop after %s responses per arm: rolled back", count(r.start))
		if r.start == 0 {
			what = "8-point drop from the start, balanced arms: rolled back"
		}
		s.rateAtLeast(t, section, what, r.after, 99)
		s.rateAtMost(t, section, fmt.Sprintf("drop after %s per arm: false rollback before it", count(r.start)), r.before, 5)
	}
	s.check(t, section, "8-point drop from the start, balanced arms: median responses per arm to roll back",
		count(fromStart), "≤ 900", fromStart >= 0 && fromStart <= 900)
	for _, r := range results {
		if r.start == 20_000 {
			m := r.median()
			s.check(t, section, "8-point drop after 20,000 per arm: median responses per arm after it to roll back",
				fmt.Sprintf("%s (%s the from-start %s)", count(m), ratio(m, fromStart), count(fromStart)),
				"≤ 4× from the start", m >= 0 && fromStart > 0 && m <= 4*fromStart)
			s.compare(5, "8-point drop after 20,000 responses per arm: responses after it to roll back (median)",
				"about 37,600 of the segment (≈ 18,800 per arm) vs about 2,000 (≈ 1,000 per arm) from the start: 19×",
				fmt.Sprintf("%s per arm vs %s from the start: %s", count(m), count(fromStart), ratio(m, fromStart)))
		}
	}
	s.compare(4, "8-point drop from the start, balanced arms: responses per arm to roll back (median)",
		"1,040", count(fromStart))
	return b.String()
}

func hit(r *rs.Rate, b bool) {
	r.N++
	if b {
		r.Count++
	}
}
