package analysis

import (
	"maps"
	"math"
)

// MaxWindows is how many recent-evidence windows are kept per variant and
// segment: the newest ones. Older windows only ever add diluted evidence;
// dropping a test never raises an error rate.
const MaxWindows = 3

// spacingFactor scales the window spacing (see WindowSpacing). Chosen by
// simulation (test/bench/stats).
const spacingFactor = 4.0

// WindowSpacing is how many effective responses (see effective) a
// recent-evidence window collects before the next one opens: spacingFactor
// times 2·σ²/MaxDrop², the responses per arm at which a difference of
// MaxDrop is one standard error, with σ² the largest per-response variance of
// the metric (0.25 for CSAT, 1 for NPS) and MaxDrop at least one point; and
// at least twice MinResponses. It depends on the configuration only.
func (c Config) WindowSpacing() int64 {
	s2 := 0.25
	if c.Metric == NPS {
		s2 = 1
	}
	d := math.Max(c.MaxDrop, minTau) / 100
	return max(int64(math.Ceil(spacingFactor*2*s2/(d*d))), 2*c.MinResponses)
}

// effective is the number of responses per arm of a balanced comparison with
// the same precision: 2·nc·nv/(nc+nv), n at balance; with a small arm,
// about twice its size.
func effective(nc, nv int64) float64 {
	if nc == 0 || nv == 0 {
		return 0
	}
	return 2 * float64(nc) * float64(nv) / float64(nc+nv)
}

// nextWindows opens a window for every variant whose newest window (or the
// run, before the first) has collected WindowSpacing effective responses,
// and keeps the newest MaxWindows. Whether a window opens depends on counts
// only, never on scores. When none opens it returns seg.Windows itself;
// windows are never changed in place.
func (e *Engine) nextWindows(seg Segment) map[string][]Window {
	if len(seg.Epochs) == 0 {
		return seg.Windows
	}
	cur := seg.Epochs[len(seg.Epochs)-1]
	spacing := float64(e.cfg.WindowSpacing())
	var out map[string][]Window
	for _, v := range seg.Variants {
		if w, ok := cur.Weights[v]; ok && w == 0 {
			continue // the variant gets no traffic: nothing recent to judge
		}
		ws := seg.Windows[v]
		var newest *Window
		if len(ws) > 0 {
			newest = &ws[len(ws)-1]
		}
		if effective(totals(e.strata(seg, v, newest, &e.bufs[1]))) < spacing {
			continue
		}
		next := Window{Index: 1, Epoch: cur.Number, ControlCounts: e.countsOf(cur, seg.Control), VariantCounts: e.countsOf(cur, v)}
		if newest != nil {
			next.Index = newest.Index + 1
		}
		grown := append(ws[max(len(ws)-MaxWindows+1, 0):len(ws):len(ws)], next) // a new array: ws is not touched
		if out == nil {
			out = maps.Clone(seg.Windows)
			if out == nil {
				out = map[string][]Window{}
			}
		}
		out[v] = grown
	}
	if out == nil {
		return seg.Windows
	}
	return out
}

// countsOf is a copy of an arm's counts in an epoch (zeros when absent).
func (e *Engine) countsOf(ep Epoch, arm string) []int64 {
	out := make([]int64, e.cfg.ScaleMax-e.cfg.ScaleMin+1)
	copy(out, ep.Counts[arm])
	return out
}
