package v1alpha1

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseInterval reads an interval as the status writes it, "[83.1, 89.0]",
// into its bounds. Readers of the status (the collector's verdict API, kubectl
// cx) parse it here, once, and carry numbers from there on.
func ParseInterval(s string) (lower, upper float64, err error) {
	t := strings.TrimSpace(s)
	if !strings.HasPrefix(t, "[") || !strings.HasSuffix(t, "]") {
		return 0, 0, fmt.Errorf("%q is not an interval such as \"[83.1, 89.0]\"", s)
	}
	lo, hi, ok := strings.Cut(t[1:len(t)-1], ",")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not an interval such as \"[83.1, 89.0]\"", s)
	}
	if lower, err = strconv.ParseFloat(strings.TrimSpace(lo), 64); err != nil {
		return 0, 0, fmt.Errorf("lower bound of %q: %w", s, err)
	}
	if upper, err = strconv.ParseFloat(strings.TrimSpace(hi), 64); err != nil {
		return 0, 0, fmt.Errorf("upper bound of %q: %w", s, err)
	}
	return lower, upper, nil
}

// ParsePoints reads a number of points or percent as the status writes it
// ("86.2", "-1.8").
func ParsePoints(s string) (float64, error) {
	return strconv.ParseFloat(strings.TrimSpace(s), 64)
}
