package rolloutsim

import (
	"math"
	"testing"
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
