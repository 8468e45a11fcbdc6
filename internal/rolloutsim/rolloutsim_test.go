package rolloutsim

import (
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/rapport-dev/rapport/internal/analysis"
)

func TestRateInterval(t *testing.T) {
	// Known Clopper-Pearson bounds (95%): 0/100 -> [0, 3.62]; 5/100 -> [1.64, 11.28]; 100/100 -> [96.38, 100].
	for _, c := range []struct {
		r      Rate
		lo, hi float64
	}{
		{Rate{0, 100}, 0, 3.62}, {Rate{5, 100}, 1.64, 11.28}, {Rate{100, 100}, 96.38, 100},
	} {
		lo, hi := c.r.Interval(0.95)
		if math.Abs(lo-c.lo) > 0.01 || math.Abs(hi-c.hi) > 0.01 {
			t.Errorf("%v: [%.2f, %.2f], want [%.2f, %.2f]", c.r, lo, hi, c.lo, c.hi)
		}
	}
}

func TestQuantile(t *testing.T) {
	xs := []int64{5, 1, 3}
	if got := Quantile(xs, 3, 0.5); got != 3 {
		t.Errorf("median %d", got)
	}
	// Two of four runs never got there: the median is the second value, the p80 never.
	if got := Quantile([]int64{7, 2}, 4, 0.5); got != 7 {
		t.Errorf("median with missing runs %d", got)
	}
	if got := Quantile([]int64{7, 2}, 4, 0.8); got != -1 {
		t.Errorf("p80 with missing runs %d", got)
	}
}

func testConfig(segments int) analysis.Config {
	return analysis.Config{Metric: analysis.CSAT, ScaleMin: 1, ScaleMax: 5, SatisfiedAtOrAbove: 4,
		MaxDrop: 3, Confidence: 0.95, MinResponses: 100, Segments: segments}
}

// twoSegments is a small scenario: two segments, a control and two
// variants, one 20 points worse, ramping 10% -> 30% on a schedule.
func twoSegments() *Scenario {
	s := &Scenario{Config: testConfig(2), Control: "control", Variants: []string{"good", "bad"},
		Steps: []int32{10, 30}, StepResponses: 1_000, Horizon: 3_000, LookEvery: 10,
		KeepJudging: true, Seed: 11}
	for _, name := range []string{"a", "b"} {
		s.Segments = append(s.Segments, Segment{Name: name, Arms: map[string]Arm{
			"control": {Truth: Constant(CSAT(85))},
			"good":    {Truth: Constant(CSAT(85))},
			"bad":     {Truth: Constant(CSAT(65))},
		}})
	}
	return s
}

func TestObserveSeesEveryLookAndChangesNothing(t *testing.T) {
	const runs = 6
	plain, err := Run(twoSegments(), runs)
	if err != nil {
		t.Fatal(err)
	}
	s := twoSegments()
	looks := make([]int, runs)
	lastAt := make([][]int64, runs)
	bad := make([]string, runs)
	s.Observe = func(run int) func(*Look) bool {
		lastAt[run] = make([]int64, len(s.Segments))
		return func(l *Look) bool {
			looks[run]++
			var n int64
			for _, arm := range []string{"control", "good", "bad"} {
				k, pos, neg := l.Tally(arm)
				if pos > k || neg != 0 {
					bad[run] = fmt.Sprintf("arm %s: %d responses, %d positive, %d negative", arm, k, pos, neg)
				}
				n += k
			}
			switch {
			case l.Run != run:
				bad[run] = fmt.Sprintf("look of run %d in run %d", l.Run, run)
			case l.At != lastAt[run][l.Segment]+s.LookEvery:
				bad[run] = fmt.Sprintf("segment %d looked at %d after %d", l.Segment, l.At, lastAt[run][l.Segment])
			case n != l.At:
				bad[run] = fmt.Sprintf("segment %d has %d responses after %d customers (no answer is lost here)", l.Segment, n, l.At)
			case len(l.Verdicts) != 2 || len(l.Rules) != 2:
				bad[run] = fmt.Sprintf("%d verdicts and %d rules for 2 variants", len(l.Verdicts), len(l.Rules))
			case l.Step != 0 && l.At <= s.StepResponses:
				bad[run] = fmt.Sprintf("step %d at %d", l.Step, l.At)
			}
			lastAt[run][l.Segment] = l.At
			return false
		}
	}
	observed, err := Run(s, runs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range runs {
		if bad[i] != "" {
			t.Errorf("run %d: %s", i, bad[i])
		}
		if looks[i] != observed[i].Looks {
			t.Errorf("run %d: observed %d looks, the run made %d", i, looks[i], observed[i].Looks)
		}
		if !reflect.DeepEqual(plain[i], observed[i]) {
			t.Errorf("run %d: observing changed the outcome:\n%+v\n%+v", i, plain[i], observed[i])
		}
	}
	// The 20-point drop is caught: the outcome is not trivial.
	if !observed[0].Segments[0].Variants["bad"].Inferior.Happened() && !observed[1].Segments[0].Variants["bad"].Inferior.Happened() {
		t.Errorf("the 20-point drop was never rolled back in runs 0 and 1: %+v", observed[:2])
	}
}

func TestObserveStopsTheRun(t *testing.T) {
	s := twoSegments()
	s.Observe = func(int) func(*Look) bool {
		return func(l *Look) bool { return l.Segment == 1 && l.At == 500 }
	}
	out, err := Run(s, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		if o.Looks != 100 { // 50 looks of each segment
			t.Errorf("run %d: %d looks, want 100 (stopped at 500 responses of each segment)", i, o.Looks)
		}
	}
}

func TestTally(t *testing.T) {
	csat := testConfig(1)
	nps := analysis.Config{Metric: analysis.NPS, ScaleMin: 0, ScaleMax: 10, MaxDrop: 5, Confidence: 0.95, MinResponses: 100, Segments: 1}
	for _, c := range []struct {
		name        string
		cfg         analysis.Config
		epochs      []analysis.Epoch
		n, pos, neg int64
	}{
		{"CSAT top-2-box over two epochs", csat, []analysis.Epoch{
			{Number: 1, Counts: analysis.Counts{"v": {1, 2, 3, 4, 5}}},
			{Number: 2, Counts: analysis.Counts{"v": {0, 0, 10, 0, 1}}},
		}, 26, 10, 0},
		{"NPS promoters, passives, detractors", nps, []analysis.Epoch{
			{Number: 1, Counts: analysis.Counts{"v": {1, 0, 0, 0, 0, 0, 2, 3, 4, 5, 6}}},
		}, 21, 11, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := &Look{Epochs: c.epochs, cfg: &c.cfg}
			n, pos, neg := l.Tally("v")
			if n != c.n || pos != c.pos || neg != c.neg {
				t.Errorf("Tally = %d, %d, %d; want %d, %d, %d", n, pos, neg, c.n, c.pos, c.neg)
			}
			if n, pos, neg := l.Tally("absent"); n != 0 || pos != 0 || neg != 0 {
				t.Errorf("an absent arm tallies %d, %d, %d", n, pos, neg)
			}
		})
	}
}
