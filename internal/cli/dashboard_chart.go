package cli

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"strconv"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// segmentChart draws the current difference to the control of each variant
// of a segment, with its always-valid interval, against 0 and −maxDrop: one
// horizontal interval (a series) per non-control variant, as inline SVG with
// a text alternative. It is the one place the dashboard draws a chart, so
// that a richer one (the report's charts over time) can replace it.
func segmentChart(seg cxv1.SegmentStatus, maxDrop float64) template.HTML {
	var b bytes.Buffer
	if err := chartTemplate.Execute(&b, layoutChart(seg, maxDrop)); err != nil {
		return template.HTML(template.HTMLEscapeString("chart: " + err.Error())) //nolint:gosec // escaped text
	}
	return template.HTML(b.String()) //nolint:gosec // produced by html/template, which escapes every value
}

// Geometry of the chart, in SVG user units.
const (
	chartWidth  = 640
	chartLeft   = 120 // room for the variant names
	chartRight  = 20
	chartTop    = 22 // room for the labels of 0 and −maxDrop
	chartRow    = 28
	chartBottom = 26 // room for the axis ticks
)

// chartLayout is what the chart template draws.
type chartLayout struct {
	Label         string // the text alternative
	Width, Height int
	Top, Bottom   int
	TickEnd       int
	AxisX1        int
	AxisX2        int
	Zero, Drop    chartMark
	Series        []chartSeries
	Ticks         []chartMark
}

// chartMark is a vertical line or tick at X with its label.
type chartMark struct {
	X     float64
	Label string
}

// chartSeries is one variant's interval [X1, X2] with its point at X.
type chartSeries struct {
	Name, Tone, Text string
	Y, X, X1, X2     float64
	// Missing is set when the variant has no difference yet.
	Missing bool
}

// chartDomain is the range of differences the chart spans: every interval,
// 0 and −maxDrop, with a margin of 5% on each side (at least 1 point wide).
func chartDomain(ivs []Interval, maxDrop float64) (lo, hi float64) {
	lo, hi = math.Min(0, -maxDrop), 0.0
	for _, iv := range ivs {
		lo, hi = math.Min(lo, iv.Lower), math.Max(hi, iv.Upper)
	}
	span := math.Max(hi-lo, 1)
	return lo - span*0.05, hi + span*0.05
}

// layoutChart places the series, the reference lines and the ticks.
func layoutChart(seg cxv1.SegmentStatus, maxDrop float64) chartLayout {
	type point struct {
		v    cxv1.VariantStatus
		diff float64
		iv   Interval
		ok   bool
	}
	var pts []point
	var ivs []Interval
	for _, v := range seg.Variants {
		if v.State == cxv1.StateControl {
			continue
		}
		p := point{v: v}
		iv, okIv := parseInterval(v.DifferenceInterval)
		d, okD := parseFloat(v.Difference)
		if okIv && okD {
			p.diff, p.iv, p.ok = d, iv, true
			ivs = append(ivs, iv)
		}
		pts = append(pts, p)
	}
	lo, hi := chartDomain(ivs, maxDrop)
	x := func(v float64) float64 {
		return math.Round((chartLeft+(v-lo)/(hi-lo)*(chartWidth-chartLeft-chartRight))*10) / 10
	}
	l := chartLayout{
		Width: chartWidth, Height: chartTop + len(pts)*chartRow + chartBottom,
		Top: chartTop - 6, Bottom: chartTop + len(pts)*chartRow, TickEnd: chartTop + len(pts)*chartRow + 4,
		AxisX1: chartLeft, AxisX2: chartWidth - chartRight,
		Zero: chartMark{X: x(0)},
		Drop: chartMark{X: x(-maxDrop), Label: "−" + points(maxDrop) + " (max drop)"},
	}
	l.Label = fmt.Sprintf("Difference to the control in segment %s, with its always-valid interval, against −%s points (max drop):", seg.Name, points(maxDrop))
	for i, p := range pts {
		s := chartSeries{Name: p.v.Name, Y: float64(chartTop + i*chartRow + chartRow/2), Tone: badgeTone(p.v)}
		if !p.ok {
			s.Missing, s.Text = true, "no difference yet"
		} else {
			s.X, s.X1, s.X2 = x(p.diff), x(p.iv.Lower), x(p.iv.Upper)
			s.Text = fmt.Sprintf("%s %s", p.v.Difference, p.v.DifferenceInterval)
		}
		l.Label += fmt.Sprintf(" %s %s, %s;", p.v.Name, s.Text, badgeText(p.v))
		l.Series = append(l.Series, s)
	}
	for _, t := range chartTicks(lo, hi) {
		l.Ticks = append(l.Ticks, chartMark{X: x(t), Label: strconv.FormatFloat(t, 'f', -1, 64)})
	}
	return l
}

// chartTicks are round values between lo and hi, about five of them, at a
// step of 1, 2 or 5 times a power of ten.
func chartTicks(lo, hi float64) []float64 {
	if !(hi > lo) {
		return nil
	}
	raw := (hi - lo) / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{2, 5, 10} {
		if step >= raw {
			break
		}
		step = m * mag
	}
	var out []float64
	for t := math.Ceil(lo/step) * step; t <= hi; t += step {
		out = append(out, math.Round(t/step)*step+0) // +0 turns −0 into 0
	}
	return out
}

var chartTemplate = template.Must(template.New("chart").Parse(`<svg class="chart" role="img" aria-label="{{.Label}}" viewBox="0 0 {{.Width}} {{.Height}}" width="{{.Width}}" height="{{.Height}}" xmlns="http://www.w3.org/2000/svg">
<title>{{.Label}}</title>
<line class="zero" x1="{{.Zero.X}}" x2="{{.Zero.X}}" y1="{{.Top}}" y2="{{.Bottom}}"/>
<line class="drop" x1="{{.Drop.X}}" x2="{{.Drop.X}}" y1="{{.Top}}" y2="{{.Bottom}}"/>
<text class="mark drop-label" x="{{.Drop.X}}" y="{{.Top}}" dy="-2">{{.Drop.Label}}</text>
{{- range .Series}}
<g class="series {{.Tone}}" data-series="{{.Name}}">
<text class="name" x="4" y="{{.Y}}" dy="4">{{.Name}}</text>
{{- if .Missing}}
<text class="missing" x="{{$.Zero.X}}" y="{{.Y}}" dy="4">{{.Text}}</text>
{{- else}}
<line class="interval" x1="{{.X1}}" x2="{{.X2}}" y1="{{.Y}}" y2="{{.Y}}"><title>{{.Name}}: {{.Text}}</title></line>
<circle class="point" cx="{{.X}}" cy="{{.Y}}" r="5"/>
{{- end}}
</g>
{{- end}}
<g class="axis">
<line x1="{{.AxisX1}}" x2="{{.AxisX2}}" y1="{{.Bottom}}" y2="{{.Bottom}}"/>
{{- range .Ticks}}
<line x1="{{.X}}" x2="{{.X}}" y1="{{$.Bottom}}" y2="{{$.TickEnd}}"/>
<text x="{{.X}}" y="{{$.Bottom}}" dy="16">{{.Label}}</text>
{{- end}}
</g>
</svg>`))
