// Package rolloutsim simulates runs of an experiment response by response,
// for the decision engine's tests, the statistics benchmarks and the
// planner's checks. It models what the controller does with the engine's
// verdicts (steps, rollbacks, allocation epochs, recent-evidence windows) but
// nothing of Kubernetes: time is counted in responses.
//
// A run is seeded (PCG from the scenario's seed and the run's index), so
// figures depend only on the seed and the number of runs, not on how runs
// are spread over goroutines.
package rolloutsim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/rapport-dev/rapport/internal/analysis"
)

// Shares is the true distribution of one response: the probability that it
// is satisfied (CSAT) or a promoter (NPS), and that it is a detractor (NPS
// only; 0 for CSAT).
type Shares struct{ Pos, Neg float64 }

// Score is the true score in points.
func (s Shares) Score() float64 { return 100 * (s.Pos - s.Neg) }

// CSAT is a CSAT arm with the given score in points.
func CSAT(score float64) Shares { return Shares{Pos: score / 100} }

// NPS is an NPS arm with the given percentages of promoters and detractors.
func NPS(promoters, detractors float64) Shares {
	return Shares{Pos: promoters / 100, Neg: detractors / 100}
}

// Truth gives an arm's true shares at time t, counted in responses of its
// segment since the run began.
type Truth func(t int64) Shares

// Constant is a Truth that never changes.
func Constant(s Shares) Truth { return func(int64) Shares { return s } }

// Shift adds delta points of score (moving satisfied or promoter share) to
// base from time from on.
func Shift(base Truth, delta float64, from int64) Truth {
	return func(t int64) Shares {
		s := base(t)
		if t >= from {
			s.Pos += delta / 100
		}
		return s
	}
}

// Linear moves from a to b between times from and to, and stays at b.
func Linear(a, b Shares, from, to int64) Truth {
	return func(t int64) Shares {
		f := math.Min(math.Max(float64(t-from)/float64(to-from), 0), 1)
		return Shares{Pos: a.Pos + f*(b.Pos-a.Pos), Neg: a.Neg + f*(b.Neg-a.Neg)}
	}
}

// Offset is base moved by delta points of score at every moment.
func Offset(base Truth, delta float64) Truth { return Shift(base, delta, math.MinInt64) }

// Arm is one arm of a segment.
type Arm struct {
	Truth Truth
	// ResponseRate is the chance that a served customer's answer is counted
	// (1 = every answer; 0.7 loses 30%, a sample-ratio mismatch).
	// 0 means 1.
	ResponseRate float64
}

// Segment is one segment's customers.
type Segment struct {
	Name string
	// Arms by name: the control and every variant.
	Arms map[string]Arm
}

// Advance says when steps advance.
type Advance int

const (
	// OnSchedule advances after StepResponses responses of each segment,
	// whatever the verdicts: it isolates the statistics from the rollout.
	OnSchedule Advance = iota
	// OnVerdict advances like the controller: once every active variant is
	// NonInferior in every segment (and not held by a sample-ratio
	// mismatch) and the step has lasted StepResponses; promotes after the
	// last step the same way.
	OnVerdict
)

// Scenario is one simulated experiment.
type Scenario struct {
	Config   analysis.Config
	Control  string
	Variants []string
	Segments []Segment
	// Steps are the weights (percent of each segment to EACH active
	// variant); StepResponses is the least number of responses of each
	// segment a step lasts.
	Steps         []int32
	StepResponses int64
	Advance       Advance
	// Horizon is the number of responses of each segment a run lasts at most.
	Horizon int64
	// LookEvery is the number of responses of each segment between looks (10).
	LookEvery int64
	// KeepJudging keeps judging after a verdict (rollback or promotion still
	// happen; "ever" rates need the full horizon) until Horizon, instead of
	// stopping the run once nothing is left to decide.
	KeepJudging bool
	// StopAtFirstVerdict ends a run once every variant in every segment has
	// been called Inferior or NonInferior at least once (for the responses
	// a first verdict takes).
	StopAtFirstVerdict bool
	// CheckSampleRatio runs the sample-ratio test at every look (Outcome
	// records the first mismatch); OnVerdict always does, to hold steps.
	CheckSampleRatio bool
	// ChangeNoWeights keeps every variant at its step weight after a
	// rollback (the verdict is recorded, traffic does not change): for
	// measuring rates of "ever called" without the rollout reacting.
	ChangeNoWeights bool
	// Observe, when set, is called once at the start of each run, from the
	// goroutine that plays it, and returns a function that sees every look
	// of every segment right after the engine's verdicts (before the run
	// reacts to them). It returns true to end the run at that look. It lets
	// other rules (a static threshold, a timer) judge the very same answers.
	Observe func(run int) func(*Look) (stop bool)
	Seed    uint64
}

// Look is one look at one segment during a run, as Scenario.Observe sees it.
// The Look and everything it holds belong to the simulator: read them during
// the call only, and do not change them.
type Look struct {
	Run, Segment int
	// At is the number of customers of the segment served so far (counting
	// those whose answers were lost); truths are functions of it.
	At int64
	// Step is the index of the current weight in Scenario.Steps; Promoted
	// says the variants were promoted (OnVerdict).
	Step     int
	Promoted bool
	// Epochs is the segment's evidence so far.
	Epochs []analysis.Epoch
	// Verdicts and Rules are the engine's verdict per variant at this look,
	// in Scenario.Variants order.
	Verdicts []analysis.Verdict
	Rules    []analysis.Rule
	cfg      *analysis.Config
}

// Tally returns an arm's responses so far, and how many of them are
// positive (satisfied for CSAT, promoters for NPS) and negative
// (detractors for NPS; always 0 for CSAT).
func (l *Look) Tally(arm string) (n, pos, neg int64) {
	cfg := l.cfg
	for _, ep := range l.Epochs {
		for i, c := range ep.Counts[arm] {
			score := cfg.ScaleMin + i
			n += c
			switch {
			case cfg.Metric == analysis.NPS && score >= 9, cfg.Metric == analysis.CSAT && score >= cfg.SatisfiedAtOrAbove:
				pos += c
			case cfg.Metric == analysis.NPS && score <= 6:
				neg += c
			}
		}
	}
	return n, pos, neg
}

// Validate checks the scenario.
func (s *Scenario) Validate() error {
	if err := s.Config.Validate(); err != nil {
		return err
	}
	switch {
	case len(s.Variants) == 0 || s.Control == "":
		return errors.New("rolloutsim: name the control and at least one variant")
	case len(s.Segments) != s.Config.Segments:
		return fmt.Errorf("rolloutsim: %d segments but Config.Segments is %d", len(s.Segments), s.Config.Segments)
	case len(s.Steps) == 0 || s.StepResponses <= 0 || s.Horizon <= 0 || s.LookEvery <= 0:
		return errors.New("rolloutsim: give Steps, StepResponses, Horizon and LookEvery")
	}
	for _, w := range s.Steps {
		if w < 1 || int(w)*len(s.Variants) > 100 {
			return fmt.Errorf("rolloutsim: step weight %d with %d variants", w, len(s.Variants))
		}
	}
	for _, seg := range s.Segments {
		for _, a := range append([]string{s.Control}, s.Variants...) {
			if seg.Arms[a].Truth == nil {
				return fmt.Errorf("rolloutsim: segment %s has no truth for arm %s", seg.Name, a)
			}
		}
	}
	return nil
}

// Event is when something first happened to a variant in a segment.
type Event struct {
	// At is the segment's responses when it happened; -1 if it never did.
	At int64
	// Responses and ControlResponses of the variant and the control then.
	Responses, ControlResponses int64
	// Rule that made an Inferior verdict.
	Rule analysis.Rule
}

// Never is an Event that did not happen.
var Never = Event{At: -1}

// Happened reports whether the event happened.
func (e Event) Happened() bool { return e.At >= 0 }

// VariantOutcome is what happened to one variant in one segment.
type VariantOutcome struct {
	Inferior, NonInferior Event
	// Promoted is when the variant was promoted in the segment (OnVerdict).
	Promoted Event
}

// SegmentOutcome is one segment's run.
type SegmentOutcome struct {
	Variants map[string]*VariantOutcome
	// Mismatch is the first look with a sample-ratio mismatch.
	Mismatch Event
}

// Outcome is one run.
type Outcome struct {
	Segments []SegmentOutcome
	// Looks made in the run (all segments together).
	Looks int
	Err   error
}

// Run plays runs runs of s across GOMAXPROCS goroutines.
func Run(s *Scenario, runs int) ([]Outcome, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	out := make([]Outcome, runs)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			eng, err := analysis.NewEngine(s.Config)
			if err != nil {
				panic(err) // validated above
			}
			for i := int(next.Add(1) - 1); i < runs; i = int(next.Add(1) - 1) {
				out[i] = play(s, eng, i)
			}
		})
	}
	wg.Wait()
	for i := range out {
		if out[i].Err != nil {
			return out, fmt.Errorf("run %d: %w", i, out[i].Err)
		}
	}
	return out, nil
}

// segmentState is one segment during a run.
type segmentState struct {
	rng     *rand.Rand
	t       int64 // responses so far
	active  map[string]bool
	epochs  []analysis.Epoch
	windows map[string][]analysis.Window
	out     *SegmentOutcome
	// cum[i] is the cumulative share threshold of arm i for the current
	// weights (assignment by weight); arms lists the names in that order,
	// models their truths and counts their tallies in the current epoch
	// (no map lookup per response).
	arms   []string
	cum    []float64
	models []Arm
	counts [][]int64
}

// play runs one run of s. One loop, response by response, in the order the
// controller acts (assign, answer, look, decide, move the weights).
//
//nolint:gocyclo // the loop reads best whole: each branch is one of the controller's steps
func play(s *Scenario, eng *analysis.Engine, run int) (o Outcome) {
	scale := s.Config.ScaleMax - s.Config.ScaleMin + 1
	arms := append([]string{s.Control}, s.Variants...)
	segs := make([]*segmentState, len(s.Segments))
	o.Segments = make([]SegmentOutcome, len(s.Segments))
	for i := range s.Segments {
		so := &o.Segments[i]
		so.Variants = map[string]*VariantOutcome{}
		so.Mismatch = Never
		for _, v := range s.Variants {
			so.Variants[v] = &VariantOutcome{Inferior: Never, NonInferior: Never, Promoted: Never}
		}
		st := &segmentState{
			rng:    rand.New(rand.NewPCG(s.Seed, uint64(run)*64+uint64(i))),
			active: map[string]bool{}, windows: map[string][]analysis.Window{}, out: so, arms: arms,
			counts: make([][]int64, len(arms)),
		}
		for _, a := range arms {
			st.models = append(st.models, s.Segments[i].Arms[a])
		}
		for _, v := range s.Variants {
			st.active[v] = true
		}
		segs[i] = st
	}
	var observe func(*Look) bool
	look := Look{Run: run, cfg: &s.Config}
	if s.Observe != nil {
		observe = s.Observe(run)
	}
	step := 0
	stepStart := int64(0)
	promoted := false
	setWeights := func() {
		for _, st := range segs {
			st.newEpoch(s, step, promoted, scale)
		}
	}
	setWeights()
	for t := s.LookEvery; t <= s.Horizon; t += s.LookEvery {
		for _, st := range segs {
			st.draw(s, scale)
		}
		o.Looks += len(segs)
		changed := false
		allClear := true
		stop := false
		for i, st := range segs {
			seg := analysis.Segment{Control: s.Control, Variants: s.Variants, Epochs: st.epochs, Windows: st.windows}
			verdicts, rules, windows, err := eng.Verdicts(seg)
			if err != nil {
				o.Err = err
				return o
			}
			st.windows = windows
			ctlN, nOf := st.responses(s.Control), st.responses
			for k, v := range s.Variants {
				vo := st.out.Variants[v]
				ev := Event{At: t, Responses: nOf(v), ControlResponses: ctlN}
				switch verdicts[k] {
				case analysis.Inferior:
					if !vo.Inferior.Happened() {
						ev.Rule = rules[k]
						vo.Inferior = ev
					}
					if st.active[v] && !s.ChangeNoWeights && !promoted {
						st.active[v] = false
						changed = true
					}
				case analysis.NonInferior:
					if !vo.NonInferior.Happened() {
						vo.NonInferior = ev
					}
				}
				if st.active[v] && verdicts[k] != analysis.NonInferior {
					allClear = false
				}
			}
			if (s.CheckSampleRatio || s.Advance == OnVerdict) && !st.out.Mismatch.Happened() {
				if sr := eng.SampleRatio(seg); sr.Mismatch {
					st.out.Mismatch = Event{At: t, ControlResponses: ctlN}
				}
			}
			if st.out.Mismatch.Happened() && s.Advance == OnVerdict {
				allClear = false
			}
			if observe != nil {
				look.Segment, look.At, look.Step, look.Promoted = i, t, step, promoted
				look.Epochs, look.Verdicts, look.Rules = st.epochs, verdicts, rules
				stop = observe(&look) || stop
			}
		}
		if stop {
			break
		}
		if !promoted {
			switch s.Advance {
			case OnSchedule:
				if step < len(s.Steps)-1 && t-stepStart >= s.StepResponses {
					step++
					stepStart = t
					changed = true
				}
			case OnVerdict:
				if allClear && t-stepStart >= s.StepResponses && anyActive(segs) {
					if step < len(s.Steps)-1 {
						step++
						stepStart = t
					} else {
						promoted = true
						for _, st := range segs {
							for _, v := range s.Variants {
								if st.active[v] {
									st.out.Variants[v].Promoted = Event{At: t, Responses: st.responses(v), ControlResponses: st.responses(s.Control)}
								}
							}
						}
					}
					changed = true
				}
			}
		}
		if changed {
			setWeights()
		}
		if (!s.KeepJudging && done(promoted, segs)) || (s.StopAtFirstVerdict && allJudged(segs)) {
			break
		}
	}
	return o
}

// done reports whether nothing is left to decide in the run: promoted, or
// every variant rolled back everywhere.
func done(promoted bool, segs []*segmentState) bool {
	return promoted || !anyActive(segs)
}

// allJudged reports whether every variant everywhere has had a verdict.
func allJudged(segs []*segmentState) bool {
	for _, st := range segs {
		for _, vo := range st.out.Variants {
			if !vo.Inferior.Happened() && !vo.NonInferior.Happened() {
				return false
			}
		}
	}
	return true
}

func anyActive(segs []*segmentState) bool {
	for _, st := range segs {
		for _, a := range st.active {
			if a {
				return true
			}
		}
	}
	return false
}

// weights returns the current percentages per arm.
func (st *segmentState) weights(s *Scenario, step int, promoted bool) map[string]int32 {
	w := map[string]int32{}
	var others int32
	for _, v := range s.Variants {
		if st.active[v] {
			w[v] = s.Steps[step]
			if promoted {
				w[v] = 100 / int32(max(countActive(st), 1))
			}
		} else {
			w[v] = 0
		}
		others += w[v]
	}
	w[s.Control] = 100 - others
	return w
}

func countActive(st *segmentState) int {
	n := 0
	for _, a := range st.active {
		if a {
			n++
		}
	}
	return n
}

// newEpoch starts an epoch with the current weights.
func (st *segmentState) newEpoch(s *Scenario, step int, promoted bool, scale int) {
	w := st.weights(s, step, promoted)
	if n := len(st.epochs); n > 0 && sameWeights(st.epochs[n-1].Weights, w) {
		return
	}
	ep := analysis.Epoch{Number: int32(len(st.epochs) + 1), Weights: w, Counts: analysis.Counts{}}
	for _, a := range st.arms {
		ep.Counts[a] = make([]int64, scale)
	}
	st.epochs = append(st.epochs, ep)
	for i, a := range st.arms {
		st.counts[i] = ep.Counts[a]
	}
	st.cum = st.cum[:0]
	var c float64
	for _, a := range st.arms {
		c += float64(w[a]) / 100
		st.cum = append(st.cum, c)
	}
}

func sameWeights(a, b map[string]int32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// draw serves LookEvery customers of the segment and counts the answers.
func (st *segmentState) draw(s *Scenario, scale int) {
	for range s.LookEvery {
		u := st.rng.Float64() * st.cum[len(st.cum)-1]
		i := 0
		for i < len(st.cum)-1 && u >= st.cum[i] {
			i++
		}
		m := &st.models[i]
		sh := m.Truth(st.t)
		st.t++
		if r := m.ResponseRate; r > 0 && r < 1 && st.rng.Float64() >= r {
			continue
		}
		counts := st.counts[i]
		switch x := st.rng.Float64(); {
		case x < sh.Pos:
			counts[scale-1]++ // top score: satisfied / promoter
		case x < sh.Pos+sh.Neg:
			counts[0]++ // detractor
		default:
			if s.Config.Metric == analysis.NPS {
				counts[7]++ // passive
			} else {
				counts[0]++ // not satisfied
			}
		}
	}
}

// responses of an arm over the run.
func (st *segmentState) responses(arm string) int64 {
	var n int64
	for _, ep := range st.epochs {
		for _, c := range ep.Counts[arm] {
			n += c
		}
	}
	return n
}

// Rate is count events out of n runs.
type Rate struct{ Count, N int }

// Value is the rate in percent.
func (r Rate) Value() float64 {
	if r.N == 0 {
		return 0
	}
	return 100 * float64(r.Count) / float64(r.N)
}

// Interval is the Clopper-Pearson (exact binomial) interval of the rate at
// the given confidence, in percent.
func (r Rate) Interval(confidence float64) (lo, hi float64) {
	a := (1 - confidence) / 2
	if r.Count > 0 {
		// lo: P(X >= count; p) = a.
		lo = bisect(func(p float64) bool { return 1-binomCDF(r.Count-1, r.N, p) < a }, 0, 1)
	}
	hi = 1
	if r.Count < r.N {
		// hi: P(X <= count; p) = a.
		hi = bisect(func(p float64) bool { return binomCDF(r.Count, r.N, p) > a }, 0, 1)
	}
	return 100 * lo, 100 * hi
}

// String is "4.20% [3.35, 5.19]" (95% Clopper-Pearson).
func (r Rate) String() string {
	lo, hi := r.Interval(0.95)
	return fmt.Sprintf("%.2f%% [%.2f, %.2f]", r.Value(), lo, hi)
}

// binomCDF is P(X <= k) for X ~ Binomial(n, p).
func binomCDF(k, n int, p float64) float64 {
	if k < 0 {
		return 0
	}
	if k >= n {
		return 1
	}
	if p <= 0 {
		return 1
	}
	if p >= 1 {
		return 0
	}
	lp, lq := math.Log(p), math.Log1p(-p)
	lgn, _ := math.Lgamma(float64(n + 1))
	var sum float64
	for i := 0; i <= k; i++ {
		a, _ := math.Lgamma(float64(i + 1))
		b, _ := math.Lgamma(float64(n - i + 1))
		sum += math.Exp(lgn - a - b + float64(i)*lp + float64(n-i)*lq)
	}
	return math.Min(sum, 1)
}

// bisect returns the point in [lo, hi] where below(p) stops holding.
func bisect(below func(float64) bool, lo, hi float64) float64 {
	for range 60 {
		m := (lo + hi) / 2
		if below(m) {
			lo = m
		} else {
			hi = m
		}
	}
	return (lo + hi) / 2
}

// Quantile is the q-quantile (nearest rank) of xs counting missing runs as
// never (-1 when fewer than a q share of runs have a value).
func Quantile(xs []int64, runs int, q float64) int64 {
	s := append([]int64(nil), xs...)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(runs))) - 1
	if i < 0 || i >= len(s) {
		return -1
	}
	return s[i]
}
