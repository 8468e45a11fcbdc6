//go:build bench

package stats

import (
	"testing"

	"github.com/rapport-dev/rapport/internal/analysis"
)

// benchSegment is one segment at 5,000 responses per arm (CSAT 85 vs 77 on
// 1..5, as 1s and 5s) spread evenly over epochs epochs, with windows
// recent-evidence windows begun in the last epoch.
func benchSegment(epochs, windows int) analysis.Segment {
	seg := analysis.Segment{Control: "control", Variants: []string{"v1"}}
	const n, ctlSat, varSat = 5000, 4250, 3850
	for e := range epochs {
		share := func(x int64) int64 { return x / int64(epochs) }
		seg.Epochs = append(seg.Epochs, analysis.Epoch{
			Number:  int32(e + 1),
			Weights: map[string]int32{"control": 50, "v1": 50},
			Counts: analysis.Counts{
				"control": {share(n - ctlSat), 0, 0, 0, share(ctlSat)},
				"v1":      {share(n - varSat), 0, 0, 0, share(varSat)},
			},
		})
	}
	// Window k began at (6+k)/10 of the last epoch's counts: all are judged,
	// and the newest is too young for another to open.
	seg.Windows = map[string][]analysis.Window{}
	last := seg.Epochs[len(seg.Epochs)-1].Counts
	for k := range windows {
		at := func(c []int64) []int64 {
			out := make([]int64, len(c))
			for i, x := range c {
				out[i] = x * int64(7+k) / 10
			}
			return out
		}
		seg.Windows["v1"] = append(seg.Windows["v1"], analysis.Window{
			Index: int32(k + 1), Epoch: int32(epochs),
			ControlCounts: at(last["control"]), VariantCounts: at(last["v1"]),
		})
	}
	return seg
}

// BenchmarkDecision times one look of the engine at 5,000 responses per arm:
// Evaluate (verdicts, intervals, explanation, sample-ratio test),
// Engine.Verdicts (what the simulations call at every look) with one and
// three epochs and three recent-evidence windows, the sample-ratio
// test alone, and one static-threshold check (window score from running
// tallies, comparison, failure count) as section 8 of the report runs it.
func BenchmarkDecision(b *testing.B) {
	cfg := csat(3, 1)
	eng, err := analysis.NewEngine(cfg)
	if err != nil {
		b.Fatal(err)
	}
	one, three := benchSegment(1, 3), benchSegment(3, 3)
	b.Run("Evaluate/1-epoch", func(b *testing.B) {
		for b.Loop() {
			r, err := eng.Evaluate(one)
			if err != nil || r.Variants[0].Verdict != analysis.Inferior {
				b.Fatal(err, r)
			}
		}
	})
	for _, c := range []struct {
		name string
		seg  analysis.Segment
	}{{"Verdicts/1-epoch-3-windows", one}, {"Verdicts/3-epochs-3-windows", three}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				v, _, _, err := eng.Verdicts(c.seg)
				if err != nil || v[0] != analysis.Inferior {
					b.Fatal(err, v)
				}
			}
		})
	}
	b.Run("SampleRatio/3-epochs", func(b *testing.B) {
		for b.Loop() {
			if sr := eng.SampleRatio(three); sr.Mismatch {
				b.Fatal(sr)
			}
		}
	})
	b.Run("threshold/check", func(b *testing.B) {
		w := newWatch(82, 0)
		// A variant at 77% satisfied, 5 responses per look, 5,000 so far.
		for i := int64(1); i <= 1000; i++ {
			w.remember(point{n: 5 * i, pos: 5 * i * 77 / 100})
		}
		for b.Loop() {
			w.ruleAt = [nRules]int64{-1, -1, -1, -1, -1, -1}
			w.check(5000, 3850, 0)
		}
		if w.ruleAt[0] < 0 {
			b.Fatal("the check did not fail on a variant at 77%")
		}
	})
}
