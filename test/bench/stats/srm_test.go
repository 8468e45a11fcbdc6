//go:build bench

package stats

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rapport-dev/rapport/internal/analysis"
	rs "github.com/rapport-dev/rapport/internal/rolloutsim"
)

// sampleRatio: the sample-ratio-mismatch guard must not fire on healthy
// traffic over a whole run, and must catch a variant whose answers arrive
// at 70% of the expected rate within 5,000 responses of the segment at a
// variant weight of 25%.
func (s *suite) sampleRatio(t *testing.T) string {
	const section = "Sample-ratio mismatch"
	var b strings.Builder
	fmt.Fprintf(&b, `## 6. Sample-ratio mismatch

The guard compares each epoch's responses per arm with the shares the
weights predict (Lindon & Malek's sequential multinomial test, at %g per
experiment, split over segments), at every look. Healthy runs ramp on a
schedule, every answer arrives (every mismatch is a false alarm). In the
deficit cases, a variant's answers arrive at a reduced rate (a broken
survey): the guard must catch it. Times are customers of the segment served
(answers lost included).

`, analysis.SampleRatioAlpha)
	b.WriteString(header("Case", "Mismatch flagged (per run)", "Customers of the segment to flag: median / p90", "Bound", "Result"))
	healthy := []struct {
		name               string
		segments, variants int
		steps              []int32
	}{
		{"Healthy ramp 5% → 25% → 50%, 1 segment, 1 variant, 60,000 responses", 1, 1, []int32{5, 25, 50}},
		{"Healthy ramp 5% → 15% → 30%, 3 segments, 3 variants each, 60,000 responses per segment", 3, 3, []int32{5, 15, 30}},
	}
	for _, h := range healthy {
		sc := scenario(csat(3, h.segments), h.steps, 20_000, 60_000, rs.Constant(rs.CSAT(85)), repeat(rs.Constant(rs.CSAT(85)), h.variants)...)
		sc.CheckSampleRatio = true
		c := countOutcomes(first(play[struct{}](t, s, "srm/"+h.name, sc, nil, nil)))
		ok := s.rateAtMost(t, section, h.name+": false alarm", c.anyMismatch, 1)
		b.WriteString(row(h.name, c.anyMismatch.String(), q2(c.mismatchAt, c.anyMismatch.N), "≤ 1%", passMark(ok)))
	}
	deficit := []struct {
		name    string
		weight  int32
		rate    float64
		horizon int64
		target  bool
	}{
		{"30% of the variant's answers lost, variant at 25%, within 5,000", 25, 0.7, 5_000, true},
		{"30% lost, variant at 50%, within 5,000", 50, 0.7, 5_000, false},
		{"30% lost, variant at 5%, within 5,000", 5, 0.7, 5_000, false},
		{"30% lost, variant at 5%, within 20,000", 5, 0.7, 20_000, false},
		{"10% lost, variant at 25%, within 20,000", 25, 0.9, 20_000, false},
	}
	for _, d := range deficit {
		sc := constant(csat(3, 1), d.weight, d.horizon, rs.CSAT(85), rs.CSAT(85))
		sc.Segments[0].Arms["v1"] = rs.Arm{Truth: rs.Constant(rs.CSAT(85)), ResponseRate: d.rate}
		sc.CheckSampleRatio = true
		c := countOutcomes(first(play[struct{}](t, s, "srm/"+d.name, sc, nil, nil)))
		bound, result := "(informational)", ""
		if d.target {
			bound = "≥ 95%"
			result = passMark(s.rateAtLeast(t, section, d.name+": caught", c.anyMismatch, 95))
		}
		b.WriteString(row(d.name, c.anyMismatch.String(), q2(c.mismatchAt, c.anyMismatch.N), bound, result))
	}
	b.WriteString(`
The drift and multi-segment cases (sections 2 and 3) run the guard at every
look too, on healthy ramps and with up to 6 segments × 5 arms; their false
alarms are printed there.
`)
	return b.String()
}

// q2 is "median / p90" of xs over n runs.
func q2(xs []int64, n int) string {
	return count(quantile(xs, n, 0.5)) + " / " + count(quantile(xs, n, 0.9))
}
