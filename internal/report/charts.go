package report

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Chart sizes: wide enough for a time axis, small enough for a page of
// sixteen segments.
const (
	chartWidth  = 18 * vg.Centimeter
	chartHeight = 8 * vg.Centimeter
)

var (
	sans      = font.Font{Typeface: "Liberation", Variant: "Sans"}
	colorDrop = color.RGBA{R: 0xc0, G: 0x1c, B: 0x28, A: 0xff}
	colorGrey = color.RGBA{R: 0x80, G: 0x80, B: 0x80, A: 0xff}
	colorMark = color.RGBA{R: 0x1a, G: 0x1a, B: 0x1a, A: 0xff}
)

// variantColor is the colour of the i-th variant (the control is 0) in every chart.
func variantColor(i int) color.Color { return plotutil.Color(i) }

// newPlot returns a plot with the report's fonts and, for time charts, a
// time axis.
func newPlot(title, xLabel, yLabel string, timeAxis bool) *plot.Plot {
	p := plot.New()
	// The figure's caption carries the title; the SVG has it as <title>.
	_ = title
	p.X.Label.Text, p.Y.Label.Text = xLabel, yLabel
	for _, ts := range []*font.Font{&p.Title.TextStyle.Font, &p.X.Label.TextStyle.Font, &p.Y.Label.TextStyle.Font,
		&p.X.Tick.Label.Font, &p.Y.Tick.Label.Font, &p.Legend.TextStyle.Font} {
		ts.Typeface, ts.Variant = sans.Typeface, sans.Variant
	}
	p.Title.TextStyle.Font.Size = vg.Points(12)
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	if timeAxis {
		p.X.Tick.Marker = plot.TimeTicks{Format: "Jan 2\n15:04", Time: plot.UnixTimeIn(time.UTC)}
	}
	p.Add(plotter.NewGrid())
	return p
}

// svgOf renders the plot as an inline SVG element (no XML prolog, fonts not
// embedded: the browser's sans-serif stands in) with a title and a
// description for assistive technology.
func svgOf(p *plot.Plot, id, title, desc string) (string, error) {
	c := vgsvg.NewWith(vgsvg.UseWH(chartWidth, chartHeight), vgsvg.EmbedFonts(false))
	p.Draw(draw.New(c))
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return "", fmt.Errorf("render chart %s: %w", id, err)
	}
	s := b.String()
	start := strings.Index(s, "<svg")
	if start < 0 {
		return "", fmt.Errorf("render chart %s: no <svg> element", id)
	}
	s = s[start:]
	end := strings.Index(s, ">")
	open := s[:end]
	open = strings.Replace(open, "<svg", fmt.Sprintf(`<svg id="%s" class="chart" role="img" aria-labelledby="%s-title %s-desc"`, id, id, id), 1)
	return open + ">\n" + fmt.Sprintf(`<title id="%s-title">%s</title><desc id="%s-desc">%s</desc>`, id, esc(title), id, esc(desc)) + s[end+1:], nil
}

// line adds a line to the plot with a legend entry.
func line(p *plot.Plot, xys plotter.XYs, name string, c color.Color, width vg.Length, dashes []vg.Length, step plotter.StepKind) error {
	if len(xys) == 0 {
		return nil
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return fmt.Errorf("chart line %s: %w", name, err)
	}
	l.Color, l.Width, l.Dashes, l.StepStyle = c, width, dashes, step
	p.Add(l)
	if name != "" {
		p.Legend.Add(name, l)
	}
	return nil
}

// band adds a translucent area between lower and upper (same x values).
func band(p *plot.Plot, lower, upper plotter.XYs, c color.Color) error {
	if len(lower) < 2 {
		return nil
	}
	ring := make(plotter.XYs, 0, 2*len(lower))
	ring = append(ring, lower...)
	for i := len(upper) - 1; i >= 0; i-- {
		ring = append(ring, upper[i])
	}
	poly, err := plotter.NewPolygon(ring)
	if err != nil {
		return fmt.Errorf("chart band: %w", err)
	}
	r, g, b, _ := c.RGBA()
	poly.Color = color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: 0x40}
	poly.Width = 0
	p.Add(poly)
	return nil
}

// hline adds a horizontal reference line across [x0, x1].
func hline(p *plot.Plot, y, x0, x1 float64, name string, c color.Color) error {
	return line(p, plotter.XYs{{X: x0, Y: y}, {X: x1, Y: y}}, name, c, vg.Points(1.5), []vg.Length{vg.Points(5), vg.Points(3)}, plotter.NoStep)
}

// vline marks a moment across [y0, y1].
func vline(p *plot.Plot, x, y0, y1 float64, name string) error {
	return line(p, plotter.XYs{{X: x, Y: y0}, {X: x, Y: y1}}, name, colorMark, vg.Points(1.5), []vg.Length{vg.Points(2), vg.Points(2)}, plotter.NoStep)
}

// timeTicks labels a time axis spanning x0..x1 (Unix seconds) with the
// precision the span needs: seconds for a short run, dates for a long one.
func timeTicks(p *plot.Plot, x0, x1 float64) {
	p.X.Tick.Marker = plot.TimeTicks{Format: tickFormat(time.Duration(x1-x0) * time.Second), Time: plot.UnixTimeIn(time.UTC)}
}

func tickFormat(span time.Duration) string {
	switch {
	case span > 48*time.Hour:
		return "Jan 2"
	case span > 6*time.Hour:
		return "Jan 2\n15:04"
	case span > 10*time.Minute:
		return "15:04"
	}
	return "15:04:05"
}

// yRange returns the range of ys widened to include extra values and a margin.
func yRange(ys []float64, extra ...float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, y := range append(append([]float64(nil), ys...), extra...) {
		lo, hi = math.Min(lo, y), math.Max(hi, y)
	}
	if math.IsInf(lo, 0) {
		return -1, 1
	}
	m := math.Max((hi-lo)*0.05, 0.5)
	return lo - m, hi + m
}
