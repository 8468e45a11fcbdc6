//go:build bench

package stats

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rapport-dev/rapport/internal/analysis"
	rs "github.com/rapport-dev/rapport/internal/rolloutsim"
)

// longHorizon is the responses of the segment of the long run.
const longHorizon = 200_000

// longRun: equal arms over a long run. Both tests (the whole-run comparison
// and every recent-evidence window, however many open) share the rollback
// budget, so false rollbacks from both together stay within it.
func (s *suite) longRun(t *testing.T) string {
	const section = "Long run"
	cfg := csat(3, 1)
	c := countOutcomes(first(play[struct{}](t, s, "long/equal", constant(cfg, 50, longHorizon, rs.CSAT(85), rs.CSAT(85)), nil, nil)))
	ok := s.rateAtMost(t, section, fmt.Sprintf("equal arms over %s responses: false rollback, both tests together", count(longHorizon)), c.inferior, 5)
	share := func(r analysis.Rule) string { return rs.Rate{Count: c.byRule[r], N: c.inferior.N}.String() }
	var b strings.Builder
	fmt.Fprintf(&b, `## 5. A long run with equal arms

A variant equal to the control (CSAT 85), balanced arms, judged at every look
for %s responses of the segment (%s per arm). A recent-evidence window opens
every %s effective responses, so about %d windows open in a run; window k
spends RecentShare/(k(k+1)) of the rollback budget, so all of them together
spend at most RecentShare (%g%%) of it, however long the run.

`, count(longHorizon), count(longHorizon/2), count(cfg.WindowSpacing()), longHorizon/2/cfg.WindowSpacing(), 100*analysis.RecentShare)
	b.WriteString(header("Case", "Rolled back (either test)", "By the whole-run test", "By a recent-evidence window", "≤ 5%"))
	b.WriteString(row("Equal arms, "+count(longHorizon)+" responses", c.inferior.String(),
		share(analysis.RuleMaxDrop), share(analysis.RuleRecentMaxDrop), passMark(ok)))
	return b.String()
}
