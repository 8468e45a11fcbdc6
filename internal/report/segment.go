package report

import (
	"fmt"
	"html/template"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/history"
)

const timeFormat = "2006-01-02 15:04:05"

func when(p history.Point) string { return p.Time().Format(timeFormat) }

// segmentCharts draws a segment's charts: the difference to the control
// (with the floor's chart of scores when a minimum is set), the weights and
// the responses over time.
func segmentCharts(id, seg string, variants []string, h *history.History, exp *cxv1.CXExperiment, s cxv1.SatisfactionSettings) ([]chartSection, error) {
	var out []chartSection
	diff, err := differenceChart(id+"-difference", seg, variants, h, exp, s)
	if err != nil {
		return nil, err
	}
	out = append(out, *diff)
	if s.Minimum != nil {
		c, err := floorChart(id+"-floor", seg, variants, h, *s.Minimum)
		if err != nil {
			return nil, err
		}
		out = append(out, *c)
	}
	w, err := overTimeChart(id+"-weights", seg, variants, h, "Weights", "traffic (%)",
		func(p history.Point) float64 { return float64(p.Weight) }, plotter.PostStep)
	if err != nil {
		return nil, err
	}
	r, err := overTimeChart(id+"-responses", seg, variants, h, "Responses", "responses",
		func(p history.Point) float64 { return float64(p.Responses) }, plotter.NoStep)
	if err != nil {
		return nil, err
	}
	return append(out, *w, *r), nil
}

// x is a point's time on the charts' axis, in Unix seconds.
func x(p history.Point) float64 { return float64(p.At) / 1000 }

// timeSpan returns the first and last time of a segment's series.
func timeSpan(h *history.History, seg string, variants []string) (float64, float64) {
	first, last := 0.0, 0.0
	for _, v := range variants {
		if sr := h.Find(seg, v); sr != nil && len(sr.Points) > 0 {
			a, b := x(sr.Points[0]), x(sr.Points[len(sr.Points)-1])
			if first == 0 || a < first {
				first = a
			}
			last = max(last, b)
		}
	}
	if last <= first {
		last = first + 1
	}
	return first, last
}

func differenceChart(id, seg string, variants []string, h *history.History, exp *cxv1.CXExperiment, s cxv1.SatisfactionSettings) (*chartSection, error) {
	title := fmt.Sprintf("Difference to the control in %s (points)", seg)
	p := newPlot(title, "time (UTC)", "difference (points)", true)
	x0, x1 := timeSpan(h, seg, variants)
	timeTicks(p, x0, x1)
	var ys []float64
	tb := table{Caption: "Figures behind the chart: " + title, Head: []string{"variant", "time (UTC)", "step", "epoch", "responses", "difference", "interval", "verdict"}}
	var marks []string
	for i, v := range variants[1:] {
		sr := h.Find(seg, v)
		if sr == nil {
			continue
		}
		var mid, lo, hi plotter.XYs
		for _, pt := range sr.Points {
			iv := "–"
			if pt.Lower != nil && pt.Upper != nil {
				lo = append(lo, plotter.XY{X: x(pt), Y: *pt.Lower})
				hi = append(hi, plotter.XY{X: x(pt), Y: *pt.Upper})
				ys = append(ys, *pt.Lower, *pt.Upper)
				iv = cxv1.FormatInterval(*pt.Lower, *pt.Upper)
			}
			if pt.Difference != nil {
				mid = append(mid, plotter.XY{X: x(pt), Y: *pt.Difference})
			}
			tb.Rows = append(tb.Rows, []string{v, when(pt), itoa(pt.Step), itoa(pt.Epoch), strconv.FormatInt(pt.Responses, 10), pts(pt.Difference), iv, string(pt.Verdict)})
		}
		c := variantColor(i + 1)
		if err := band(p, lo, hi, c); err != nil {
			return nil, err
		}
		if err := line(p, mid, v+" (band: confidence sequence)", c, vg.Points(2), nil, plotter.NoStep); err != nil {
			return nil, err
		}
	}
	ylo, yhi := yRange(ys, -s.MaxDrop, 0)
	if err := hline(p, 0, x0, x1, "", colorGrey); err != nil {
		return nil, err
	}
	if err := hline(p, -s.MaxDrop, x0, x1, "−maxDrop ("+num(-s.MaxDrop)+")", colorDrop); err != nil {
		return nil, err
	}
	for _, v := range variants[1:] {
		if t, what, ok := decisionMoment(exp, seg, v); ok {
			if err := vline(p, float64(t.UnixMilli())/1000, ylo, yhi, "decision: "+what); err != nil {
				return nil, err
			}
			marks = append(marks, what+" at "+t.UTC().Format(timeFormat))
			break
		}
	}
	p.Y.Min, p.Y.Max = ylo, yhi
	desc := fmt.Sprintf("For each variant, the difference of its score to the control's in segment %s over time, with the band of differences the evidence allows, against the tolerated drop of %s points.", seg, num(s.MaxDrop))
	if len(marks) > 0 {
		desc += " Decision marked: " + marks[0] + "."
	} else {
		desc += " No decision yet."
	}
	return section(p, id, title, desc, tb)
}

func floorChart(id, seg string, variants []string, h *history.History, floor float64) (*chartSection, error) {
	title := fmt.Sprintf("Scores in %s against the floor (points)", seg)
	p := newPlot(title, "time (UTC)", "score (points)", true)
	x0, x1 := timeSpan(h, seg, variants)
	timeTicks(p, x0, x1)
	tb := table{Caption: "Figures behind the chart: " + title, Head: []string{"variant", "time (UTC)", "score"}}
	ys, err := variantLines(p, &tb, seg, variants, h, plotter.NoStep, func(pt history.Point) (float64, bool) {
		if pt.Score == nil {
			return 0, false
		}
		return *pt.Score, true
	}, func(v string, pt history.Point) []string { return []string{v, when(pt), pts(pt.Score)} })
	if err != nil {
		return nil, err
	}
	if err := hline(p, floor, x0, x1, "floor ("+num(floor)+")", colorDrop); err != nil {
		return nil, err
	}
	p.Y.Min, p.Y.Max = yRange(ys, floor)
	return section(p, id, title, fmt.Sprintf("Each variant's score in segment %s over time, against the floor of %s points.", seg, num(floor)), tb)
}

func overTimeChart(id, seg string, variants []string, h *history.History, what, unit string, value func(history.Point) float64, step plotter.StepKind) (*chartSection, error) {
	title := fmt.Sprintf("%s in %s", what, seg)
	p := newPlot(title, "time (UTC)", unit, true)
	x0, x1 := timeSpan(h, seg, variants)
	timeTicks(p, x0, x1)
	tb := table{Caption: "Figures behind the chart: " + title, Head: []string{"variant", "time (UTC)", "step", unit}}
	ys, err := variantLines(p, &tb, seg, variants, h, step, func(pt history.Point) (float64, bool) { return value(pt), true },
		func(v string, pt history.Point) []string { return []string{v, when(pt), itoa(pt.Step), num(value(pt))} })
	if err != nil {
		return nil, err
	}
	p.Y.Min, p.Y.Max = yRange(ys, 0)
	return section(p, id, title, fmt.Sprintf("%s of each variant in segment %s over time (%s).", what, seg, unit), tb)
}

// variantLines draws a line per variant with a series in seg, through the
// points value gives a value for (ok false leaves a point off the line), adds
// each point's row to tb, and returns the values drawn.
func variantLines(p *plot.Plot, tb *table, seg string, variants []string, h *history.History, step plotter.StepKind,
	value func(history.Point) (y float64, ok bool), row func(variant string, pt history.Point) []string) ([]float64, error) {
	var ys []float64
	for i, v := range variants {
		sr := h.Find(seg, v)
		if sr == nil {
			continue
		}
		var xys plotter.XYs
		for _, pt := range sr.Points {
			if y, ok := value(pt); ok {
				xys = append(xys, plotter.XY{X: x(pt), Y: y})
				ys = append(ys, y)
			}
			tb.Rows = append(tb.Rows, row(v, pt))
		}
		if err := line(p, xys, v, variantColor(i), vg.Points(2), nil, step); err != nil {
			return nil, err
		}
	}
	return ys, nil
}

func distributionChart(variants []string, t *cxv1.ResponseTally, s cxv1.SatisfactionSettings) (*chartSection, error) {
	title := "Score distribution per variant (all segments)"
	p := newPlot(title, "score", "share of the variant's responses (%)", false)
	n := s.Scores()
	labels := make([]string, n)
	for i := range n {
		labels[i] = strconv.Itoa(int(t.Spec.ScoreMin) + i)
	}
	tb := table{Caption: "Figures behind the chart: responses per score and variant", Head: append([]string{"variant"}, labels...)}
	width := vg.Points(float64(chartWidth.Points()) * 0.6 / float64(n*max(len(variants), 1)))
	for i, v := range variants {
		counts := make([]float64, n)
		var total float64
		for _, c := range t.Spec.Counts {
			if c.Variant != v {
				continue
			}
			for j, k := range c.Scores {
				if j < n {
					counts[j] += float64(k)
					total += float64(k)
				}
			}
		}
		shares := make(plotter.Values, n)
		row := make([]string, 0, 1+n)
		row = append(row, v)
		for j := range n {
			if total > 0 {
				shares[j] = 100 * counts[j] / total
			}
			row = append(row, fmt.Sprintf("%d (%.1f%%)", int64(counts[j]), shares[j]))
		}
		tb.Rows = append(tb.Rows, row)
		bars, err := plotter.NewBarChart(shares, width)
		if err != nil {
			return nil, fmt.Errorf("chart bars %s: %w", v, err)
		}
		bars.Color = variantColor(i)
		bars.LineStyle.Width = 0
		bars.Offset = vg.Length(float64(i)-float64(len(variants)-1)/2) * width
		p.Add(bars)
		p.Legend.Add(v, bars)
	}
	p.NominalX(labels...)
	p.Y.Min = 0
	return section(p, "distribution", title, fmt.Sprintf("Bars per score on the survey scale %d..%d: the share of each variant's responses at that score, over the run and all segments.", s.ScoreMin, s.ScoreMax), tb)
}

func section(p *plot.Plot, id, title, desc string, tb table) (*chartSection, error) {
	svg, err := svgOf(p, id, title, desc)
	if err != nil {
		return nil, err
	}
	return &chartSection{ID: id, Heading: title, SVG: template.HTML(svg), Table: tb}, nil //nolint:gosec // drawn by gonum/plot, which escapes its text
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }
