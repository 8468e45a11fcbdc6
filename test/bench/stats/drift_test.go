//go:build bench

package stats

import (
	"fmt"
	"strings"
	"testing"

	rs "github.com/rapport-dev/rapport/internal/rolloutsim"
)

// Ramp of the drift cases: the variant's weight goes 5% -> 25% -> 50% every
// rampStep responses of the segment, on a schedule (whatever the verdicts,
// so the statistics alone are judged), until rampHorizon.
const (
	rampStep    = 10_000
	rampHorizon = 40_000
)

var rampSteps = []int32{5, 25, 50}

// driftCase is a drift of both arms' satisfaction during the ramp: equal is
// the control's truth when testing a variant equal to it at every moment,
// worse when testing one 4 points worse at every moment. Each shift moves in
// the direction that favours the wrong call: down for the equal variant (the
// variant, weighted towards later periods, then looks worse), up for the
// worse one (it then looks better).
type driftCase struct {
	name        string
	equal       rs.Truth
	worse       rs.Truth
	description string
}

func driftCases() []driftCase {
	at := func(x float64) rs.Truth { return rs.Constant(rs.CSAT(x)) }
	rise := rs.Linear(rs.CSAT(80), rs.CSAT(88), 0, 30_000)
	fall := rs.Linear(rs.CSAT(88), rs.CSAT(80), 0, 30_000)
	return []driftCase{
		{"Shift at a step boundary", rs.Shift(at(88), -8, 10_000), rs.Shift(at(80), 8, 10_000),
			"88 → 80 (equal) or 80 → 88 (worse) at 10,000, when 5% becomes 25%"},
		{"Shift inside a step", rs.Shift(at(88), -8, 15_000), rs.Shift(at(80), 8, 15_000),
			"88 → 80 (equal) or 80 → 88 (worse) at 15,000, in the middle of the 25% step"},
		{"Gradual rise", rise, rise, "80 → 88 linearly from 0 to 30,000"},
		{"Gradual fall", fall, fall, "88 → 80 linearly from 0 to 30,000"},
	}
}

// drift: both arms' satisfaction moves while the weights ramp. Pooled over
// the run, such drifts made the previous engine roll back an equal variant
// in 17.6% of runs and clear one 4 points worse in 95%.
func (s *suite) drift(t *testing.T) string {
	const section = "Drift while ramping"
	var b strings.Builder
	fmt.Fprintf(&b, `## 2. Drift of both arms while the weights ramp

The variant's weight ramps %s%% → %s%% → %s%% every %s responses of the segment
(on a schedule, so the statistics alone are judged), up to %s. Both arms'
true CSAT moves over time in the same way; the variant is either equal to
the control at every moment (every rollback is false) or 4 points worse at
every moment, beyond maxDrop 3 (every clearance is false). Shifts move in the
direction that favours the wrong call: down for the equal variant, up for
the worse one. The engine compares the arms within each allocation epoch;
pooled tallies would weigh the variant towards later periods (Simpson's
paradox, issue 12, finding 1). The sample-ratio test runs at every look too
(healthy traffic: every mismatch is a false alarm).

`, fnum(float64(rampSteps[0])), fnum(float64(rampSteps[1])), fnum(float64(rampSteps[2])), count(rampStep), count(rampHorizon))
	b.WriteString(header("Drift of both arms", "Control's true CSAT over time", "Equal variant: rolled back",
		"4 points worse: cleared", "Sample-ratio false alarms", "≤ 5%"))
	worstEqual, worstRise := rs.Rate{}, rs.Rate{}
	for _, c := range driftCases() {
		run := func(kind string, ctl rs.Truth, offset float64) counts {
			sc := scenario(csat(3, 1), rampSteps, rampStep, rampHorizon, ctl, offsetTruth(ctl, offset))
			sc.CheckSampleRatio = true
			return countOutcomes(first(play[struct{}](t, s, "drift/"+kind+"/"+c.name, sc, nil, nil)))
		}
		equal := run("equal", c.equal, 0)
		worse := run("worse", c.worse, -4)
		ok := s.rateAtMost(t, section, c.name+": equal variant falsely rolled back", equal.inferior, 5)
		ok = s.rateAtMost(t, section, c.name+": variant 4 points worse falsely cleared", worse.nonInferior, 5) && ok
		srm := rs.Rate{Count: equal.mismatch.Count + worse.mismatch.Count, N: equal.mismatch.N + worse.mismatch.N}
		b.WriteString(row(c.name, c.description, equal.inferior.String(), worse.nonInferior.String(), srm.String(), passMark(ok)))
		if c.name != "Gradual rise" && equal.inferior.Value() >= worstEqual.Value() { // the shapes where CSAT falls 88 -> 80
			worstEqual = equal.inferior
		}
		if c.name == "Gradual rise" {
			worstRise = worse.nonInferior
		}
	}
	b.WriteString(`
Times are responses of the segment. The sample-ratio column pools both
variants' runs of the case.
`)
	s.compare(1, "Equal variant, CSAT 88 → 80 during the ramp: falsely rolled back before promotion",
		"17.6% (shape not given)", worstEqual.String()+" (worst of the three falling shapes, ever rolled back)")
	s.compare(1, "Variant 4 points worse, both arms rising 80 → 88 during the ramp: promoted",
		"95%", worstRise.String()+" cleared (gradual rise; clearing is needed to promote)")
	return b.String()
}

func offsetTruth(base rs.Truth, delta float64) rs.Truth {
	if delta == 0 {
		return base
	}
	return rs.Offset(base, delta)
}
