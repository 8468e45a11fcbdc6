package history

import (
	"fmt"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// The encoded form is columnar, so that gzip finds the repetitions: per
// series one array per field, times and responses as differences to the
// point before, values in points as integer tenths (null while unknown),
// verdicts as indexes into a table.

type wire struct {
	Version    int          `json:"version"`
	Experiment string       `json:"experiment"`
	Run        int32        `json:"run"`
	Verdicts   []string     `json:"verdicts"`
	Series     []wireSeries `json:"series"`
}

type wireSeries struct {
	Segment    string   `json:"segment"`
	Variant    string   `json:"variant"`
	At         []int64  `json:"atDelta"`
	Step       []int32  `json:"step"`
	Epoch      []int32  `json:"epoch"`
	Responses  []int64  `json:"responsesDelta"`
	Score      []*int64 `json:"scoreTenths"`
	Difference []*int64 `json:"differenceTenths"`
	Lower      []*int64 `json:"lowerTenths"`
	Upper      []*int64 `json:"upperTenths"`
	Verdict    []int    `json:"verdict"`
	Weight     []int32  `json:"weight"`
}

func tenths(x *float64) *int64 {
	if x == nil {
		return nil
	}
	v := int64(*x * 10)
	if *x*10-float64(v) >= 0.5 {
		v++
	} else if *x*10-float64(v) <= -0.5 {
		v--
	}
	return &v
}

func fromTenths(v *int64) *float64 {
	if v == nil {
		return nil
	}
	x := float64(*v) / 10
	return &x
}

func toWire(h *History) *wire {
	w := &wire{Version: h.Version, Experiment: h.Experiment, Run: h.Run, Verdicts: []string{""}}
	index := map[cxv1.Verdict]int{"": 0}
	for _, s := range h.Series {
		ws := wireSeries{Segment: s.Segment, Variant: s.Variant}
		var at, n int64
		for _, p := range s.Points {
			i, ok := index[p.Verdict]
			if !ok {
				i = len(w.Verdicts)
				index[p.Verdict] = i
				w.Verdicts = append(w.Verdicts, string(p.Verdict))
			}
			ws.At = append(ws.At, p.At-at)
			ws.Responses = append(ws.Responses, p.Responses-n)
			at, n = p.At, p.Responses
			ws.Step = append(ws.Step, p.Step)
			ws.Epoch = append(ws.Epoch, p.Epoch)
			ws.Score = append(ws.Score, tenths(p.Score))
			ws.Difference = append(ws.Difference, tenths(p.Difference))
			ws.Lower = append(ws.Lower, tenths(p.Lower))
			ws.Upper = append(ws.Upper, tenths(p.Upper))
			ws.Verdict = append(ws.Verdict, i)
			ws.Weight = append(ws.Weight, p.Weight)
		}
		w.Series = append(w.Series, ws)
	}
	return w
}

func fromWire(w *wire) (*History, error) {
	h := &History{Version: w.Version, Experiment: w.Experiment, Run: w.Run}
	for _, ws := range w.Series {
		n := len(ws.At)
		for _, l := range []int{len(ws.Step), len(ws.Epoch), len(ws.Responses), len(ws.Score), len(ws.Difference),
			len(ws.Lower), len(ws.Upper), len(ws.Verdict), len(ws.Weight)} {
			if l != n {
				return nil, fmt.Errorf("decode history: series %s/%s has columns of different lengths", ws.Segment, ws.Variant)
			}
		}
		s := Series{Segment: ws.Segment, Variant: ws.Variant, Points: make([]Point, n)}
		var at, resp int64
		for i := range n {
			if ws.Verdict[i] < 0 || ws.Verdict[i] >= len(w.Verdicts) {
				return nil, fmt.Errorf("decode history: series %s/%s: verdict index %d out of range", ws.Segment, ws.Variant, ws.Verdict[i])
			}
			at += ws.At[i]
			resp += ws.Responses[i]
			s.Points[i] = Point{At: at, Step: ws.Step[i], Epoch: ws.Epoch[i], Responses: resp,
				Score: fromTenths(ws.Score[i]), Difference: fromTenths(ws.Difference[i]),
				Lower: fromTenths(ws.Lower[i]), Upper: fromTenths(ws.Upper[i]),
				Verdict: cxv1.Verdict(w.Verdicts[ws.Verdict[i]]), Weight: ws.Weight[i]}
		}
		h.Series = append(h.Series, s)
	}
	return h, nil
}
