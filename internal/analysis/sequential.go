package analysis

import "math"

// This file holds the always-valid test every claim is made with.
//
// A claim compares a parameter theta (a difference to the control, or a
// score) with a threshold theta0. The evidence is summed into
//
//	Z = sum over strata of (estimate_e - theta0) / V_e,   I = sum of 1/V_e
//
// with V_e the variance of the stratum's estimate under theta = theta0
// (restricted.go). Under theta = theta0, Z grows like a Brownian motion in
// "information time" I: within a stratum the allocation is constant, so each
// response adds a bounded, centred increment; strata add up. A one-sided
// normal-mixture martingale of Z,
//
//	M+(Z, I) = 2/sqrt(1+tau²I) · exp(tau²Z²/(2(1+tau²I))) · Phi(tau·Z/sqrt(1+tau²I)),
//
// (the likelihood ratio of "drift theta - theta0 ~ half-normal(0, tau²)"
// against "no drift", Robbins 1970; Johari, Pekelis & Walsh 2022 for the
// two-sided form) has expectation at most one under theta <= theta0, so by
// Ville's inequality it ever reaches 1/alpha with probability at most alpha,
// however often it is looked at. The claim theta > theta0 is made once it
// does; theta < theta0 uses -Z. With variances estimated from the data the
// guarantee is asymptotic (Waudby-Smith et al., "Time-uniform central limit
// theory", 2023); the simulations in this package's tests and in test/bench
// check it where asymptotics are weakest: small arms, shares near 0 or 100,
// the margin itself, drift while the weights change.

// logOneSided is log M+(z, info) for mixing variance tau2.
func logOneSided(z, info, tau2 float64) float64 {
	a := 1 + tau2*info
	return math.Ln2 - 0.5*math.Log(a) + tau2*z*z/(2*a) + logPhi(math.Sqrt(tau2/a)*z)
}

// logPhi is the log of the standard normal distribution function, accurate
// far into the lower tail.
func logPhi(x float64) float64 {
	if x > -20 {
		return math.Log(0.5 * math.Erfc(-x/math.Sqrt2))
	}
	// Mills' ratio: Phi(x) ~ phi(x)/|x| · (1 - 1/x² + 3/x⁴).
	x2 := x * x
	return -x2/2 - math.Log(-x) - 0.5*math.Log(2*math.Pi) + math.Log1p(-1/x2+3/(x2*x2))
}

// claimHolds reports whether the one-sided claim "theta exceeds theta0" (z
// and info computed at theta0) holds at error rate alpha.
func claimHolds(z, info, tau2, alpha float64) bool {
	return z > 0 && info > 0 && logOneSided(z, info, tau2) >= -math.Log(alpha)
}

// stratum is one allocation epoch's counts per category for the control and
// one variant (or for one arm, in a score test).
type stratum struct {
	ctl, vr []int64
	nc, nv  int64
	// mc and mv are the observed means in proportion units.
	mc, mv float64
}

// differenceStatistic returns Z and I for the claim about
// variant - control at delta (proportion units), over strata where both arms
// have responses. Z and I are in points and 1/points².
func (e *engine) differenceStatistic(strata []stratum, delta float64) (z, info float64) {
	for i := range strata {
		st := &strata[i]
		if st.nc == 0 || st.nv == 0 {
			continue
		}
		vc, vv := e.fit.twoArms(e.values, st.ctl, st.vr, delta)
		v := 1e4 * (vc/float64(st.nc) + vv/float64(st.nv)) // points²
		z += 100 * (st.mv - st.mc - delta) / v
		info += 1 / v
	}
	return z, info
}

// scoreStatistic returns Z and I for a claim about one arm's score at mean0
// (proportion units), from the arm's counts pooled over the run.
func (e *engine) scoreStatistic(counts []int64, n int64, mean float64, mean0 float64) (z, info float64) {
	if n == 0 {
		return 0, 0
	}
	v := 1e4 * e.fit.oneArm(e.values, counts, mean0) / float64(n)
	return 100 * (mean - mean0) / v, 1 / v
}

// switchPoint finds, by bisection, where a monotone condition stops holding:
// f is true below the returned point and false above it, within [lo, hi]. It
// returns lo when f holds nowhere and hi when it holds everywhere.
//
// Confidence bounds are switch points of claims: the lower bound of theta is
// where "theta > t" stops holding as t grows, the upper bound where
// "theta < t" starts holding.
func switchPoint(f func(t float64) bool, lo, hi float64) float64 {
	const tolerance = 1e-5 // proportion units: a thousandth of a point
	if !f(lo) {
		return lo
	}
	if f(hi) {
		return hi
	}
	for hi-lo > tolerance {
		m := lo + (hi-lo)/2
		if f(m) {
			lo = m
		} else {
			hi = m
		}
	}
	return lo + (hi-lo)/2
}
