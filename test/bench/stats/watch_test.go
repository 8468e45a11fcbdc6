//go:build bench

package stats

import (
	"sort"
	"testing"

	"github.com/rapport-dev/rapport/internal/analysis"
	rs "github.com/rapport-dev/rapport/internal/rolloutsim"
)

// checkEvery is the number of the variant's responses between two checks
// of a static-threshold rule (one analysis interval, "a minute of traffic").
const checkEvery = 100

// rule is one static-threshold canary rule, as users of Argo Rollouts or
// Flagger write it: every checkEvery responses of the variant, its score
// over its last window responses is compared with a constant; the rule
// rolls back after limit failed checks, counted in a row (a passing check
// resets the count) or in total.
type rule struct {
	label       string
	window      int64
	limit       int
	consecutive bool
}

var rules = [...]rule{
	{"w100 ×1", 100, 1, false},
	{"w100 ×5 in a row", 100, 5, true},
	{"w100 ×5 total", 100, 5, false},
	{"w500 ×1", 500, 1, false},
	{"w500 ×5 in a row", 500, 5, true},
	{"w500 ×5 total", 500, 5, false},
}

const nRules = len(rules)

// point is the variant's tally at one look.
type point struct{ n, pos, neg int64 }

// watch follows the first variant of the first segment through a run: the
// engine's verdicts and the static-threshold rules, on the same answers. All
// times are the variant's responses (per arm at balanced weights); -1 is
// never.
type watch struct {
	threshold float64 // points: a check fails when the window's score is below it
	dropAt    int64   // responses of the segment at which the variant's truth changes (0: none)

	hist      []point
	nextCheck int64
	consec    [nRules]int
	total     [nRules]int

	// ruleAt is when each rule rolled back.
	ruleAt [nRules]int64
	// inferiorAt, nonInferiorAt: the engine's first Inferior and NonInferior;
	// firstAt and first: the first of the two (a canary step stops there).
	inferiorAt, nonInferiorAt, firstAt int64
	inferiorRule                       analysis.Rule
	first                              analysis.Verdict
	// atDrop is the variant's responses at the look where the drop began.
	atDrop int64
}

func newWatch(threshold float64, dropAt int64) *watch {
	w := &watch{threshold: threshold, dropAt: dropAt, nextCheck: checkEvery,
		inferiorAt: -1, nonInferiorAt: -1, firstAt: -1, atDrop: -1}
	for i := range w.ruleAt {
		w.ruleAt[i] = -1
	}
	if dropAt == 0 {
		w.atDrop = 0
	}
	return w
}

// look records one look; it reports true (end the run) once the engine and
// every rule have rolled back, or once the engine has if stopAtRollback.
func (w *watch) look(l *rs.Look, stopAtRollback bool) bool {
	if l.Segment != 0 {
		return false
	}
	n, pos, neg := l.Tally("v1")
	w.remember(point{n, pos, neg})
	if w.atDrop < 0 && l.At >= w.dropAt {
		w.atDrop = n
	}
	switch l.Verdicts[0] {
	case analysis.Inferior:
		if w.inferiorAt < 0 {
			w.inferiorAt, w.inferiorRule = n, l.Rules[0]
		}
		if w.firstAt < 0 {
			w.firstAt, w.first = n, analysis.Inferior
		}
	case analysis.NonInferior:
		if w.nonInferiorAt < 0 {
			w.nonInferiorAt = n
		}
		if w.firstAt < 0 {
			w.firstAt, w.first = n, analysis.NonInferior
		}
	}
	if n >= w.nextCheck {
		w.nextCheck = (n/checkEvery + 1) * checkEvery
		w.check(n, pos, neg)
	}
	if w.inferiorAt < 0 {
		return false
	}
	if stopAtRollback {
		return true
	}
	for _, at := range w.ruleAt {
		if at < 0 {
			return false
		}
	}
	return true
}

// maxWindow is the largest window of the rules.
const maxWindow = 500

// remember appends the look's tally to the history, forgetting looks older
// than any window needs (a run has thousands of looks).
func (w *watch) remember(p point) {
	w.hist = append(w.hist, p)
	if len(w.hist) < 1024 {
		return
	}
	j := sort.Search(len(w.hist), func(k int) bool { return w.hist[k].n > p.n-maxWindow }) - 1
	if j > len(w.hist)/2 {
		w.hist = w.hist[:copy(w.hist, w.hist[j:])]
	}
}

// check runs every rule's check at the current look.
func (w *watch) check(n, pos, neg int64) {
	for i, r := range rules {
		if w.ruleAt[i] >= 0 {
			continue
		}
		// The window: the responses since the last look at which the
		// variant had at most n - window (all of them while fewer exist).
		wn, wp, wd := n, pos, neg
		if n > r.window {
			j := sort.Search(len(w.hist), func(k int) bool { return w.hist[k].n > n-r.window }) - 1
			if j >= 0 {
				wn, wp, wd = n-w.hist[j].n, pos-w.hist[j].pos, neg-w.hist[j].neg
			}
		}
		if float64(100*(wp-wd)) < w.threshold*float64(wn) {
			w.consec[i]++
			w.total[i]++
		} else {
			w.consec[i] = 0
		}
		c := w.total[i]
		if r.consecutive {
			c = w.consec[i]
		}
		if c >= r.limit {
			w.ruleAt[i] = n
		}
	}
}

// watchAll plays sc with a watch per run.
func (s *suite) watchAll(t *testing.T, name string, sc *rs.Scenario, threshold float64, dropAt int64, stopAtRollback bool) []*watch {
	_, ws := play(t, s, name, sc,
		func(int) *watch { return newWatch(threshold, dropAt) },
		func(w *watch, l *rs.Look) bool { return w.look(l, stopAtRollback) })
	return ws
}
