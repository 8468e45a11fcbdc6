package v1alpha1

import (
	"fmt"
	"strconv"
	"strings"
)

// Points in status (a score, a difference, a share of responses) are
// decimal strings with one decimal, e.g. "86.2", "-1.8"; intervals are
// "[lower, upper]", e.g. "[83.1, 89.0]". The API has no floats, so a value
// is formatted once, where the controller writes status, and every reader
// (the operator's metrics, kubectl cx, the controller between two polls of
// a metric) parses it with the same pair: FormatPoints and ParsePoints,
// Interval.String and ParseInterval.

// FormatPoints formats points for status, with one decimal: "86.2".
func FormatPoints(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }

// ParsePoints reads points that FormatPoints wrote (surrounding spaces allowed).
func ParsePoints(s string) (float64, error) {
	v, err := ParseDecimal(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("points: %w", err)
	}
	return v, nil
}

// FormatInterval formats a confidence interval for status: "[83.1, 89.0]".
func FormatInterval(lower, upper float64) string {
	return "[" + FormatPoints(lower) + ", " + FormatPoints(upper) + "]"
}

// ParseInterval reads an interval that FormatInterval wrote.
func ParseInterval(s string) (lower, upper float64, err error) {
	t := strings.TrimSpace(s)
	if !strings.HasPrefix(t, "[") || !strings.HasSuffix(t, "]") {
		return 0, 0, fmt.Errorf("interval %q: want [lower, upper]", s)
	}
	lo, hi, ok := strings.Cut(t[1:len(t)-1], ",")
	if !ok {
		return 0, 0, fmt.Errorf("interval %q: want [lower, upper]", s)
	}
	if lower, err = ParsePoints(lo); err != nil {
		return 0, 0, fmt.Errorf("interval %q: lower bound: %w", s, err)
	}
	if upper, err = ParsePoints(hi); err != nil {
		return 0, 0, fmt.Errorf("interval %q: upper bound: %w", s, err)
	}
	return lower, upper, nil
}
