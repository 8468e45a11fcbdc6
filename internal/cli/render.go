package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/util/duration"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// RenderOptions are what renderers depend on besides the objects: the clock
// (ages and durations are relative to Now) and whether to colour the output.
type RenderOptions struct {
	Now   time.Time
	Color bool
}

// ANSI colours used by the renderers.
const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
)

// paint wraps s in an ANSI colour when colour is on.
func (o RenderOptions) paint(color, s string) string {
	if !o.Color || color == "" || s == "" {
		return s
	}
	return color + s + ansiReset
}

// phaseColors, verdictColors and stateColors are the colours of phases,
// verdicts and variant states; the others are not painted.
var (
	phaseColors = map[cxv1.ExperimentPhase]string{
		cxv1.PhaseSucceeded:   ansiGreen,
		cxv1.PhaseRolledBack:  ansiRed,
		cxv1.PhaseFailed:      ansiRed,
		cxv1.PhasePaused:      ansiYellow,
		cxv1.PhaseProgressing: ansiCyan,
	}
	verdictColors = map[cxv1.Verdict]string{
		cxv1.VerdictNonInferior:      ansiGreen,
		cxv1.VerdictInferior:         ansiRed,
		cxv1.VerdictInconclusive:     ansiYellow,
		cxv1.VerdictInsufficientData: ansiDim,
	}
	stateColors = map[cxv1.VariantState]string{
		cxv1.StatePromoted:   ansiGreen,
		cxv1.StateRolledBack: ansiRed,
		cxv1.StateRetired:    ansiDim,
	}
)

// printer writes formatted output and keeps the first write error, so that
// renderers read as a sequence of prints and still report a failed write
// (a closed pipe, a full disk).
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func (p *printer) println(args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintln(p.w, args...)
	}
}

// cell is one table cell: the text, and the colour it is painted with.
type cell struct {
	text, color string
}

func c(text string) cell              { return cell{text: text} }
func colored(color, text string) cell { return cell{text: text, color: color} }

// orDash returns s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func itoa[T ~int | ~int32 | ~int64](v T) string { return strconv.FormatInt(int64(v), 10) }

// table renders aligned columns like kubectl: columns separated by three
// spaces, widths measured in runes of the visible text (colour codes do not
// count), no trailing spaces.
type table struct {
	indent string
	rows   [][]cell
}

func (t *table) add(cells ...cell) { t.rows = append(t.rows, cells) }

func (t *table) header(names ...string) {
	cells := make([]cell, len(names))
	for i, n := range names {
		cells[i] = c(n)
	}
	t.add(cells...)
}

func (t *table) write(p *printer, o RenderOptions) {
	var widths []int
	for _, r := range t.rows {
		for i, cl := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(cl.text))
		}
	}
	for _, r := range t.rows {
		var b strings.Builder
		b.WriteString(t.indent)
		for i, cl := range r {
			b.WriteString(o.paint(cl.color, cl.text))
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cl.text)+3))
			}
		}
		p.println(strings.TrimRight(b.String(), " "))
	}
}

// age formats the time since t like kubectl's AGE column ("12m", "3d4h");
// "<unknown>" for a zero time.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}

// specDuration formats a configured duration without zero units: 30m, 1h30m, 90s → 1m30s.
func specDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ProgressBar draws the share current/total of width cells, e.g. [██████░░░░]
// for 2/3 of 10. Values outside 0..total are clamped; total 0 draws an empty bar.
func ProgressBar(current, total, width int) string {
	filled := 0
	if total > 0 {
		filled = min(max(current, 0), total) * width / total
	}
	return "[" + strings.Repeat("█", filled) + strings.Repeat("░", width-filled) + "]"
}

// parseInterval reads status strings such as "[83.1, 89.0]" (cxv1.ParseInterval).
func parseInterval(s string) (Interval, bool) {
	lo, hi, err := cxv1.ParseInterval(s)
	return Interval{Lower: lo, Upper: hi}, err == nil
}

// parseFloat reads points of the status (cxv1.ParsePoints).
func parseFloat(s string) (float64, bool) {
	v, err := cxv1.ParsePoints(s)
	return v, err == nil
}

// pm formats a score with the half-width of its interval: "86.0 ± 2.1".
// Intervals are clipped to the metric's range, so the half-width is the
// interval's width halved (the score may sit off-centre near 0 or 100).
func pm(score, iv string) string {
	if score == "" {
		return "-"
	}
	i, ok := parseInterval(iv)
	if !ok {
		return score
	}
	return fmt.Sprintf("%s ± %.1f", score, (i.Upper-i.Lower)/2)
}

// diffWithInterval formats "-1.8 [-6.1, 2.5]".
func diffWithInterval(diff, iv string) string {
	if diff == "" {
		return "-"
	}
	if iv == "" {
		return diff
	}
	return diff + " " + iv
}

func share(s string) string {
	if s == "" {
		return "-"
	}
	return s + "%"
}

// thousands formats 12345 as 12,345.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// timestamp formats a time for people: RFC 3339 in UTC, to the second.
func timestamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
