//go:build bench

package stats

import (
	"testing"

	"github.com/rapport-dev/rapport/internal/analysis"
)

// BenchmarkDecision times one decision at a look, at 5,000 responses per arm
// (CSAT 85 vs 77): the engine's full Evaluate (intervals, verdict and the
// explanation line), the same verdict from EstimateArm and HalfWidth as the
// simulation computes it, and one static-threshold check (window score from
// running tallies, comparison, failure count), as the simulation computes it.
func BenchmarkDecision(b *testing.B) {
	m := csatSetup(defaultSeed)
	const n, ctlSat, varSat = 5000, 4250, 3850
	w := newWorker(m)
	m.tally(w.ctl.Counts, ctlSat, 0, n)
	m.tally(w.vr.Counts, varSat, 0, n)
	w.variants[0] = w.vr

	b.Run("always-valid/Evaluate", func(b *testing.B) {
		for b.Loop() {
			as, err := analysis.Evaluate(m.cfg, w.ctl, w.variants)
			if err != nil || as[0].Verdict != analysis.Inferior {
				b.Fatal(err, as)
			}
		}
	})
	b.Run("always-valid/EstimateArm+HalfWidth", func(b *testing.B) {
		for b.Loop() {
			if v, _, _, msg := w.decide(); v != analysis.Inferior {
				b.Fatal(v, msg)
			}
		}
	})
	b.Run("threshold/check", func(b *testing.B) {
		// Cumulative variant tallies as the simulation keeps them, 77% satisfied.
		for i := range w.cumPos {
			w.cumPos[i] = int64(i) * step * 77 / 100
		}
		const last = n / step
		r := rules[1] // window 100, 5 consecutive failures
		wb := r.window / step
		var consec, rolled int
		for b.Loop() {
			pos, neg := w.cumPos[last]-w.cumPos[last-wb], w.cumNeg[last]-w.cumNeg[last-wb]
			if float64(100*(pos-neg)) < m.threshold*float64(wb*step) {
				consec++
			} else {
				consec = 0
			}
			if consec >= r.limit {
				rolled++
				consec = 0
			}
		}
		if rolled == 0 {
			b.Fatal("the check never failed")
		}
	})
}
