//go:build bench

package stats

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/rapport-dev/rapport/internal/analysis"
)

const (
	step          = 10                   // responses per arm between looks
	horizon       = 20000                // responses per arm at most
	batches       = horizon / step       // looks (batches of step responses per arm)
	checkEvery    = 100                  // variant responses between threshold-rule checks
	shortHorizon  = 2000                 // a short canary, for the "rolled back by" table
	evaluateEvery = 64                   // cross-check one look in this many with analysis.Evaluate
	boundaryEps   = 1e-9                 // looks this close to the margin are always cross-checked
	never         = int64(math.MaxInt64) // stopping point of a run that never stopped
)

// shares is the true distribution of one response: the probability that it is
// satisfied (CSAT) or a promoter (NPS), and that it is a detractor (NPS only).
type shares struct{ pos, neg float64 }

// score is the true score in points.
func (s shares) score() float64 { return 100 * (s.pos - s.neg) }

// perResponse is the variance of one response's contribution to the score,
// in proportion units (p(1-p) for CSAT, (p+d)-(p-d)² for NPS).
func (s shares) perResponse() float64 {
	x := s.pos - s.neg
	return (s.pos + s.neg) - x*x
}

// cut turns shares into thresholds on a uniform 64-bit draw u: u < a is a
// positive response, a <= u < b a detractor, anything else neither.
type cut struct{ a, b uint64 }

func frac64(x float64) uint64 {
	if !(x >= 0 && x < 1) {
		panic(fmt.Sprintf("stats: share %g outside [0, 1)", x))
	}
	return uint64(math.Ldexp(x, 64))
}

func (s shares) cut() cut { return cut{frac64(s.pos), frac64(s.pos + s.neg)} }

// scenario is one case: the true distribution of each arm for every batch.
type scenario struct {
	label string
	// drop is the true drop of the variant below the control in points, or NaN
	// when it is not constant over the run (then there is nothing to plan).
	drop float64
	// truth says what the right call is: "roll back", "keep" or "either".
	truth            string
	control, variant shares // at the start of the run (planning inputs)
	ctlCuts, varCuts []cut  // per batch
}

func constant(s shares) []cut {
	c := make([]cut, batches)
	for i := range c {
		c[i] = s.cut()
	}
	return c
}

// drifting moves linearly from one distribution to another between the from-th
// and the to-th response of the arm, and stays there. Each batch uses the
// distribution at its middle response.
func drifting(start, end shares, from, to int) []cut {
	c := make([]cut, batches)
	for i := range c {
		mid := float64(i*step) + float64(step)/2
		f := math.Min(math.Max((mid-float64(from))/float64(to-from), 0), 1)
		c[i] = shares{start.pos + f*(end.pos-start.pos), start.neg + f*(end.neg-start.neg)}.cut()
	}
	return c
}

// rule is one static-threshold canary rule.
type rule struct {
	label       string
	window      int // responses of the variant the score is computed over
	limit       int // failed checks before rolling back
	consecutive bool
}

// rules, in groups of three per window: limit 1, 5 in a row, 5 in total
// (checkRuns relies on this order).
var rules = [...]rule{
	{"w100 ×1", 100, 1, false},
	{"w100 ×5 consec.", 100, 5, true},
	{"w100 ×5 total", 100, 5, false},
	{"w500 ×1", 500, 1, false},
	{"w500 ×5 consec.", 500, 5, true},
	{"w500 ×5 total", 500, 5, false},
}

const nRules = len(rules)

// metricSetup is one metric's configuration and its cases.
type metricSetup struct {
	name      string // "CSAT" or "NPS"
	cfg       analysis.Config
	baseline  float64 // the control's expected score, points
	threshold float64 // the static threshold: baseline - MaxDrop
	seed      uint64
	scenarios []scenario
}

// tally writes the counts of an arm into dst (scores ScaleMin..ScaleMax).
func (m *metricSetup) tally(dst []int64, pos, neg, n int64) {
	clear(dst)
	if m.cfg.Metric == analysis.CSAT {
		dst[0], dst[len(dst)-1] = n-pos, pos // 1s and 5s
		return
	}
	dst[0], dst[7], dst[10] = neg, n-pos-neg, pos // detractors, passives, promoters
}

// runResult is how one run ended under every rule.
type runResult struct {
	// Rapport, stopping at the first Inferior or NonInferior; Inconclusive at
	// horizon when neither came.
	first  analysis.Verdict
	firstN int64
	// Rapport, never stopping: the first Inferior look, or never.
	inferiorN int64
	// Static-threshold rules: the check at which each rolled back, or never.
	ruleN [nRules]int64
	// looks cross-checked with analysis.Evaluate.
	checked int
	err     string
}

// worker holds the buffers of one goroutine.
type worker struct {
	m              *metricSetup
	ctl, vr        analysis.Arm
	variants       []analysis.Arm
	cumPos, cumNeg []int64 // variant tallies after each batch, for windows
	tau2, alpha    float64
	margin         float64
}

func newWorker(m *metricSetup) *worker {
	k := m.cfg.ScaleMax - m.cfg.ScaleMin + 1
	w := &worker{
		m:      m,
		ctl:    analysis.Arm{Name: "control", Counts: make([]int64, k)},
		vr:     analysis.Arm{Name: "variant", Counts: make([]int64, k)},
		cumPos: make([]int64, batches+1),
		cumNeg: make([]int64, batches+1),
		tau2:   m.cfg.MixingVariance(),
		alpha:  m.cfg.IntervalAlpha(1),
		margin: -m.cfg.MaxDrop,
	}
	w.variants = []analysis.Arm{w.vr}
	return w
}

// draw adds step responses with thresholds c to the tallies.
func draw(r *rand.Rand, c cut, pos, neg int64) (int64, int64) {
	for range step {
		switch u := r.Uint64(); {
		case u < c.a:
			pos++
		case u < c.b:
			neg++
		}
	}
	return pos, neg
}

func finite(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// simulate plays run number run of scenario sc.
func (w *worker) simulate(sc *scenario, run int) (res runResult) {
	m := w.m
	rc := rand.New(rand.NewPCG(m.seed, 2*uint64(run)))
	rv := rand.New(rand.NewPCG(m.seed, 2*uint64(run)+1))
	res.inferiorN = never
	for i := range res.ruleN {
		res.ruleN[i] = never
	}
	var consec, total [nRules]int
	var cp, cn, vp, vn int64
	rulesLeft := nRules
	looks := 0
	fail := func(format string, args ...any) runResult {
		res.err = fmt.Sprintf("%s %s run %d: ", m.name, sc.label, run) + fmt.Sprintf(format, args...)
		return res
	}
	for b := range batches {
		cp, cn = draw(rc, sc.ctlCuts[b], cp, cn)
		vp, vn = draw(rv, sc.varCuts[b], vp, vn)
		n := int64(b+1) * step
		w.cumPos[b+1], w.cumNeg[b+1] = vp, vn
		if cp+cn > n || vp+vn > n {
			return fail("tallies exceed %d responses", n)
		}
		m.tally(w.ctl.Counts, cp, cn, n)
		m.tally(w.vr.Counts, vp, vn, n)

		if n < m.cfg.MinResponses {
			// No verdict may come before MinResponses: check it on the last look before.
			if n+step >= m.cfg.MinResponses {
				if msg := w.crossCheck(n, analysis.InsufficientData, math.NaN()); msg != "" {
					return fail("%s", msg)
				}
			}
		} else if res.first == "" || res.inferiorN == never {
			v, d, near, msg := w.decide()
			if msg != "" {
				return fail("at %d: %s", n, msg)
			}
			settles := (v == analysis.Inferior && res.inferiorN == never) || (v != analysis.Inconclusive && res.first == "")
			if looks%evaluateEvery == 0 || near || settles {
				if msg := w.crossCheck(n, v, d); msg != "" {
					return fail("%s", msg)
				}
				res.checked++
			}
			looks++
			if v == analysis.Inferior && res.inferiorN == never {
				res.inferiorN = n
			}
			if v != analysis.Inconclusive && res.first == "" {
				res.first, res.firstN = v, n
			}
		}

		if n%checkEvery == 0 && rulesLeft > 0 {
			for i, r := range rules {
				if res.ruleN[i] != never {
					continue
				}
				wb := min(b+1, r.window/step)
				pos, neg := w.cumPos[b+1]-w.cumPos[b+1-wb], w.cumNeg[b+1]-w.cumNeg[b+1-wb]
				if float64(100*(pos-neg)) < m.threshold*float64(wb*step) {
					consec[i]++
					total[i]++
				} else {
					consec[i] = 0
				}
				count := total[i]
				if r.consecutive {
					count = consec[i]
				}
				if count >= r.limit {
					res.ruleN[i] = n
					rulesLeft--
				}
			}
		}
		if rulesLeft == 0 && res.first != "" && res.inferiorN != never {
			break // every rule has stopped; further responses change nothing
		}
	}
	if res.first == "" {
		res.first, res.firstN = analysis.Inconclusive, horizon
	}
	return res
}

// decide is one look of the engine for the current tallies, computed from the
// exported pieces exactly as analysis.Evaluate computes it for one variant
// without Minimum. near reports a difference interval within boundaryEps of
// the margin.
func (w *worker) decide() (v analysis.Verdict, diff float64, near bool, msg string) {
	ce, err := analysis.EstimateArm(w.m.cfg, w.ctl)
	if err != nil {
		return "", 0, false, err.Error()
	}
	ve, err := analysis.EstimateArm(w.m.cfg, w.vr)
	if err != nil {
		return "", 0, false, err.Error()
	}
	h, err := analysis.HalfWidth(ve.Variance+ce.Variance, w.tau2, w.alpha)
	if err != nil {
		return "", 0, false, err.Error()
	}
	diff = ve.Score - ce.Score
	lo, hi := diff-h, diff+h
	if !finite(ce.Score, ce.Variance, ve.Score, ve.Variance, h, lo, hi) {
		return "", 0, false, fmt.Sprintf("non-finite estimate: control %+v, variant %+v, half-width %g", ce, ve, h)
	}
	near = math.Abs(hi-w.margin) < boundaryEps || math.Abs(lo-w.margin) < boundaryEps
	switch {
	case hi < w.margin:
		return analysis.Inferior, diff, near, ""
	case lo > w.margin:
		return analysis.NonInferior, diff, near, ""
	default:
		return analysis.Inconclusive, diff, near, ""
	}
}

// crossCheck calls analysis.Evaluate on the current tallies and reports any
// disagreement with the simulation's verdict v and difference diff (NaN: not
// compared), any non-finite figure and any miscount.
func (w *worker) crossCheck(n int64, v analysis.Verdict, diff float64) string {
	var sum [2]int64
	for i, arm := range []analysis.Arm{w.ctl, w.vr} {
		for _, c := range arm.Counts {
			if c < 0 {
				return fmt.Sprintf("negative count in %s at %d: %v", arm.Name, n, arm.Counts)
			}
			sum[i] += c
		}
	}
	if sum[0] != n || sum[1] != n {
		return fmt.Sprintf("tallies add up to %d and %d, want %d per arm", sum[0], sum[1], n)
	}
	w.variants[0] = w.vr
	as, err := analysis.Evaluate(w.m.cfg, w.ctl, w.variants)
	if err != nil {
		return fmt.Sprintf("Evaluate at %d: %v", n, err)
	}
	if len(as) != 1 {
		return fmt.Sprintf("Evaluate at %d returned %d assessments, want 1", n, len(as))
	}
	a := as[0]
	switch {
	case a.Verdict != v:
		return fmt.Sprintf("Evaluate at %d says %s, the simulation %s: %s", n, a.Verdict, v, a.Explanation)
	case a.Responses != n || a.ControlResponses != n:
		return fmt.Sprintf("Evaluate at %d counts %d and %d responses", n, a.Responses, a.ControlResponses)
	case !finite(a.Score, a.ScoreInterval.Lower, a.ScoreInterval.Upper, a.ControlScore,
		a.Difference, a.DifferenceInterval.Lower, a.DifferenceInterval.Upper):
		return fmt.Sprintf("Evaluate at %d gave a non-finite figure: %+v", n, a)
	case !math.IsNaN(diff) && math.Abs(a.Difference-diff) > boundaryEps:
		return fmt.Sprintf("Evaluate at %d gives difference %g, the simulation %g", n, a.Difference, diff)
	}
	return ""
}

// simulateAll plays runs of sc across GOMAXPROCS goroutines; result i is run
// i's whatever goroutine played it.
func simulateAll(m *metricSetup, sc *scenario, runs int) []runResult {
	out := make([]runResult, runs)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			w := newWorker(m)
			for i := int(next.Add(1) - 1); i < runs; i = int(next.Add(1) - 1) {
				out[i] = w.simulate(sc, i)
			}
		})
	}
	wg.Wait()
	return out
}
