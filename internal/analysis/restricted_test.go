package analysis

import (
	"math"
	"math/rand/v2"
	"testing"
)

// bruteTwoProportions maximises the likelihood of two proportions whose
// difference is delta (variant - control) by golden-section search over the
// control's share, with the same pseudo-counts as the fit: the oracle for
// the Lagrangian solution.
func bruteTwoProportions(ctl, vr []int64, delta float64) (pc, pv float64) {
	xc1, xc0 := float64(ctl[1])+pseudoCount, float64(ctl[0])+pseudoCount
	xv1, xv0 := float64(vr[1])+pseudoCount, float64(vr[0])+pseudoCount
	ll := func(p float64) float64 {
		q := p + delta
		return xc1*math.Log(p) + xc0*math.Log(1-p) + xv1*math.Log(q) + xv0*math.Log(1-q)
	}
	lo, hi := math.Max(0, -delta)+1e-15, math.Min(1, 1-delta)-1e-15
	g := (math.Sqrt(5) - 1) / 2
	for range 300 {
		a, b := hi-g*(hi-lo), lo+g*(hi-lo)
		if ll(a) < ll(b) {
			lo = a
		} else {
			hi = b
		}
	}
	pc = (lo + hi) / 2
	return pc, pc + delta
}

func TestTwoArmFitMatchesBruteForceForProportions(t *testing.T) {
	f := newRestricted(2)
	s := []float64{0, 1}
	r := rand.New(rand.NewPCG(1, 2))
	cases := [][2][]int64{
		{{15, 85}, {15, 85}}, {{0, 100}, {0, 100}}, {{100, 0}, {0, 100}}, {{3, 97}, {0, 5}},
		{{300, 1700}, {6, 94}}, {{1, 0}, {0, 1}}, {{0, 0}, {0, 0}},
	}
	for range 200 {
		nc, nv := 1+r.Int64N(5000), 1+r.Int64N(500)
		xc, xv := r.Int64N(nc+1), r.Int64N(nv+1)
		cases = append(cases, [2][]int64{{nc - xc, xc}, {nv - xv, xv}})
	}
	for _, c := range cases {
		for _, delta := range []float64{-0.03, -0.001, 0, 0.05, -0.5, -0.97} {
			vc, vv := f.twoArms(s, c[0], c[1], delta)
			pc, pv := bruteTwoProportions(c[0], c[1], delta)
			if math.Abs(vc-pc*(1-pc)) > 1e-7 || math.Abs(vv-pv*(1-pv)) > 1e-7 {
				t.Fatalf("counts %v delta %g: fit variances %g, %g; brute force shares %g, %g give %g, %g",
					c, delta, vc, vv, pc, pv, pc*(1-pc), pv*(1-pv))
			}
		}
	}
}

// TestTwoArmFitNPS checks the three-category fit by its defining
// properties: the fitted means differ by delta, and no feasible
// perturbation of the fit has a higher likelihood.
func TestTwoArmFitNPS(t *testing.T) {
	s := []float64{-1, 0, 1}
	f := newRestricted(3)
	r := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		ctl := []int64{r.Int64N(300), r.Int64N(300), r.Int64N(300)}
		vr := []int64{r.Int64N(60), r.Int64N(60), r.Int64N(60)}
		delta := -1.9 + 3.8*r.Float64()
		f.twoArms(s, ctl, vr, delta)
		p, q := append([]float64(nil), f.p...), append([]float64(nil), f.q...)
		mv, _ := armMoments(s, p)
		mc, _ := armMoments(s, q)
		if math.Abs(mv-mc-delta) > 1e-9 {
			t.Fatalf("ctl %v vr %v delta %g: fitted means differ by %g", ctl, vr, delta, mv-mc)
		}
		ll := func(p, q []float64) float64 {
			var v float64
			for k := range s {
				v += (float64(vr[k])+pseudoCount)*math.Log(p[k]) + (float64(ctl[k])+pseudoCount)*math.Log(q[k])
			}
			return v
		}
		best := ll(p, q)
		for range 50 {
			// A feasible direction: move mass within each arm keeping sums,
			// with equal changes of the two means.
			a, b := 1e-4*(r.Float64()-0.5), 1e-4*(r.Float64()-0.5)
			dp := []float64{a, -a - b, b} // mean change: b - a
			dq := []float64{a, -a - b, b} // same mean change
			pp, qq := make([]float64, 3), make([]float64, 3)
			ok := true
			for k := range s {
				pp[k], qq[k] = p[k]+dp[k], q[k]+dq[k]
				ok = ok && pp[k] > 0 && qq[k] > 0
			}
			if ok && ll(pp, qq) > best+1e-9 {
				t.Fatalf("ctl %v vr %v delta %g: a feasible perturbation raises the likelihood", ctl, vr, delta)
			}
		}
	}
}

func TestOneArmFit(t *testing.T) {
	f := newRestricted(2)
	s := []float64{0, 1}
	for _, c := range []struct {
		counts []int64
		mean0  float64
	}{{[]int64{10, 90}, 0.8}, {[]int64{0, 100}, 0.95}, {[]int64{50, 0}, 0.01}, {[]int64{0, 0}, 0.5}} {
		v := f.oneArm(s, c.counts, c.mean0)
		if math.Abs(v-c.mean0*(1-c.mean0)) > 1e-9 {
			t.Errorf("counts %v at %g: variance %g, want %g (a proportion fitted to its hypothesis)", c.counts, c.mean0, v, c.mean0*(1-c.mean0))
		}
	}
	f3 := newRestricted(3)
	s3 := []float64{-1, 0, 1}
	f3.oneArm(s3, []int64{15, 35, 50}, 0.2)
	if m, _ := armMoments(s3, f3.p); math.Abs(m-0.2) > 1e-9 {
		t.Errorf("NPS fit has mean %g, want 0.2", m)
	}
}

func BenchmarkTwoArmFit(b *testing.B) {
	for _, c := range []struct {
		name string
		s    []float64
		ctl  []int64
		vr   []int64
	}{
		{"CSAT", []float64{0, 1}, []int64{300, 1700}, []int64{20, 80}},
		{"NPS", []float64{-1, 0, 1}, []int64{150, 350, 500}, []int64{20, 30, 50}},
	} {
		b.Run(c.name, func(b *testing.B) {
			f := newRestricted(len(c.s))
			for b.Loop() {
				f.twoArms(c.s, c.ctl, c.vr, -0.03)
			}
		})
	}
}
