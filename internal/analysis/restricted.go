package analysis

import "math"

// This file holds the maximum-likelihood fits under a hypothesis: the
// variances every test uses are those of the distributions that are most
// likely given the data AND the hypothesis being tested, not the plug-in
// variances of the observed shares. That is what keeps a lucky small arm from
// narrowing its own interval: with 97% of a small arm satisfied by chance,
// the plug-in variance 0.97·0.03 is half the variance at the margin, while
// the fit under "the variant is maxDrop below the control" puts the variant
// near the margin and uses its variance there (Farrington & Manning 1990;
// Miettinen & Nurminen 1985 for two proportions; the same Lagrangian
// solution for NPS's three categories, as in empirical likelihood).
//
// Categories: CSAT has two (not satisfied 0, satisfied 1), NPS three
// (detractor -1, passive 0, promoter +1). Scores are in proportion units
// here; callers convert to points.

// pseudoCount is added to every category of an arm before a fit: the
// Jeffreys prior's half count. A category never observed (ten 5s) then
// keeps a positive probability, so no fit is degenerate and no variance is
// zero; it shifts a fitted share by at most 0.5/n.
const pseudoCount = 0.5

// fitTolerance ends the Newton iterations (relative to the counts).
const fitTolerance = 1e-12

// maxFitIterations bounds every iteration; the functions solved are smooth
// and monotone, so the bound is never reached on finite input.
const maxFitIterations = 200

// armMoments returns the mean and per-response variance of an arm whose
// category shares are p, with category values s.
func armMoments(s, p []float64) (mean, variance float64) {
	for k, pk := range p {
		mean += s[k] * pk
	}
	for k, pk := range p {
		d := s[k] - mean
		variance += pk * d * d
	}
	return mean, variance
}

// normaliser solves sum_k x_k/(a + lambda*s_k) = 1 for a, with every
// denominator positive (the root is unique: the left side falls from +inf to
// 0 as a grows). Two categories have a closed form; otherwise Newton's method
// runs from guess (the caller's previous root), safeguarded by bisection.
func normaliser(s, x []float64, lambda, guess float64) float64 {
	if len(s) == 2 {
		// x0/(a+l0) + x1/(a+l1) = 1 with li = lambda*s_i: with b = a + l0 and
		// d = l1 - l0, b² + b(d - x0 - x1) - x0·d = 0, the positive root.
		l0, d := lambda*s[0], lambda*(s[1]-s[0])
		c := d - x[0] - x[1]
		disc := c*c + 4*x[0]*d
		var b float64
		if c <= 0 {
			b = (-c + math.Sqrt(disc)) / 2
		} else {
			b = 2 * x[0] * d / (c + math.Sqrt(disc)) // the same root, without cancellation
		}
		if !(b > 0) || !(b+d > 0) { // rounding at an extreme lambda: fall back to the general method
			return normaliserNewton(s, x, lambda, guess)
		}
		return b - l0
	}
	return normaliserNewton(s, x, lambda, guess)
}

func normaliserNewton(s, x []float64, lambda, guess float64) float64 {
	lo := math.Inf(-1) // a must exceed -lambda*s_k for every k
	j := 0
	for k := range s {
		if b := -lambda * s[k]; b > lo {
			lo, j = b, k
		}
	}
	h := func(a float64) (v, dv float64) {
		v = -1
		for k := range s {
			d := a + lambda*s[k]
			v += x[k] / d
			dv -= x[k] / (d * d)
		}
		return v, dv
	}
	// Bracket: h(left) > 0 > h(right).
	left, right := lo, math.Inf(1)
	a := guess
	if !(a > lo) || math.IsNaN(a) || math.IsInf(a, 0) {
		a = lo + x[j]/2 // the binding term alone is 2 there, so h > 0
	}
	for range maxFitIterations {
		v, dv := h(a)
		if math.Abs(v) <= fitTolerance {
			return a
		}
		if v > 0 {
			left = a
		} else {
			right = a
		}
		next := a - v/dv
		if !(next > left && next < right) {
			if math.IsInf(right, 1) {
				next = 2*a - left
			} else {
				next = left + (right-left)/2
			}
		}
		if next == a {
			return a
		}
		a = next
	}
	return a
}

// fitShares writes into p the shares x_k/(a + lambda*s_k) and returns
// S0 = sum x_k/d_k², S1 = sum x_k s_k/d_k², S2 = sum x_k s_k²/d_k², from
// which the derivative of the arm's mean in lambda follows.
func fitShares(s, x []float64, lambda, a float64, p []float64) (s0, s1, s2 float64) {
	for k := range s {
		d := a + lambda*s[k]
		p[k] = x[k] / d
		w := x[k] / (d * d)
		s0 += w
		s1 += w * s[k]
		s2 += w * s[k] * s[k]
	}
	return s0, s1, s2
}

// restricted holds the buffers of the fits, so a caller that fits often
// (every look of every stratum) allocates once.
type restricted struct {
	x, y, p, q, t []float64
}

func newRestricted(categories int) *restricted {
	buf := make([]float64, 5*categories)
	return &restricted{
		x: buf[0:categories], y: buf[categories : 2*categories], p: buf[2*categories : 3*categories],
		q: buf[3*categories : 4*categories], t: buf[4*categories:],
	}
}

// twoArms fits the control (category counts ctl) and the variant (counts
// vr) under the hypothesis mean(variant) - mean(control) = delta, and
// returns each arm's per-response variance at the fit. delta must lie
// strictly between min(s)-max(s) and max(s)-min(s).
//
// The fit maximises the two multinomial likelihoods subject to the
// constraint; with Lagrange multiplier lambda the shares are
// p_k = x_k/(a + lambda*s_k) for the variant and q_k = y_k/(b - lambda*s_k)
// for the control, a and b normalising, and lambda solves
// mean(p) - mean(q) = delta, which decreases in lambda.
func (r *restricted) twoArms(s []float64, ctl, vr []int64, delta float64) (varCtl, varVr float64) {
	x, y, p, q := r.x, r.y, r.p, r.q
	var nx, ny float64
	for k := range s {
		x[k] = float64(vr[k]) + pseudoCount
		y[k] = float64(ctl[k]) + pseudoCount
		nx += x[k]
		ny += y[k]
	}
	negS := r.t
	for k, v := range s {
		negS[k] = -v
	}
	a, b := nx, ny
	g := func(lambda float64) (v, dv float64) {
		a = normaliser(s, x, lambda, a)
		b = normaliser(negS, y, lambda, b)
		s0, s1, s2 := fitShares(s, x, lambda, a, p)
		t0, t1, t2 := fitShares(negS, y, lambda, b, q)
		mv, _ := armMoments(s, p)
		mc, _ := armMoments(s, q)
		// d mean(p)/d lambda = -(S2 - S1²/S0); the control's, with -s, is +(T2 - T1²/T0).
		return mv - mc - delta, -(s2 - s1*s1/s0) - (t2 - t1*t1/t0)
	}
	lambda := solveDecreasingIn(g, math.Inf(-1), math.Inf(1), fitTolerance)
	a = normaliser(s, x, lambda, a)
	b = normaliser(negS, y, lambda, b)
	fitShares(s, x, lambda, a, p)
	fitShares(negS, y, lambda, b, q)
	_, varVr = armMoments(s, p)
	_, varCtl = armMoments(s, q)
	return varCtl, varVr
}

// oneArm fits one arm (category counts c) under the hypothesis
// mean = mean0 and returns the per-response variance at the fit. mean0 must
// lie strictly between min(s) and max(s). With t_k = s_k - mean0 the shares
// are x_k/(n + lambda*t_k), lambda solving sum x_k t_k/(n + lambda*t_k) = 0.
func (r *restricted) oneArm(s []float64, c []int64, mean0 float64) float64 {
	x, p := r.x, r.p
	var n float64
	for k := range s {
		x[k] = float64(c[k]) + pseudoCount
		n += x[k]
	}
	t := r.t
	for k := range s {
		t[k] = s[k] - mean0
	}
	f := func(lambda float64) (v, dv float64) {
		for k := range s {
			d := n + lambda*t[k]
			v += x[k] * t[k] / d
			dv -= x[k] * t[k] * t[k] / (d * d)
		}
		return v, dv
	}
	// The domain keeps every n + lambda*t_k positive.
	lo, hi := math.Inf(-1), math.Inf(1)
	for _, tk := range t {
		switch {
		case tk > 0:
			lo = math.Max(lo, -n/tk)
		case tk < 0:
			hi = math.Min(hi, -n/tk)
		}
	}
	lambda := solveDecreasingIn(f, lo, hi, fitTolerance*n)
	for k := range s {
		p[k] = x[k] / (n + lambda*t[k])
	}
	_, v := armMoments(s, p)
	return v
}

// solveDecreasingIn finds the root of a decreasing function in (lo, hi)
// (either may be infinite) with Newton's method, falling back to bisection
// whenever a step leaves the bracket. It stops once |g| <= vtol or the
// bracket is as narrow as float64 allows.
func solveDecreasingIn(g func(float64) (float64, float64), lo, hi, vtol float64) float64 {
	x := 0.0
	if !(x > lo && x < hi) {
		x = mid(lo, hi)
	}
	for range maxFitIterations {
		v, dv := g(x)
		if math.Abs(v) <= vtol {
			return x
		}
		if v > 0 {
			lo = x
		} else {
			hi = x
		}
		if hi-lo <= 1e-15*math.Max(1, math.Abs(x)) {
			return x
		}
		next := x - v/dv
		if !(next > lo && next < hi) {
			next = mid(lo, hi)
		}
		x = next
	}
	return x
}

// mid is a point inside (lo, hi) for bracket searches where an end may be
// infinite.
func mid(lo, hi float64) float64 {
	switch {
	case math.IsInf(lo, -1) && math.IsInf(hi, 1):
		return 0
	case math.IsInf(lo, -1):
		return hi - math.Max(1, math.Abs(hi))
	case math.IsInf(hi, 1):
		return lo + math.Max(1, math.Abs(lo))
	}
	return lo + (hi-lo)/2
}
