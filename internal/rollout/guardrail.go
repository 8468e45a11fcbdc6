package rollout

import (
	"fmt"
	"math"
	"strconv"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// Breached judges a guardrail value (read by a measure.GuardrailReader):
// it breaches when above max or below min (a value equal to a bound
// passes); a breach goes to Decide as Input.Breaches. evidence is one line for status and
// events, e.g. "error-rate 0.034 > max 0.01" or "error-rate 0.004 <= max 0.01".
// It fails when the guardrail has no bound, a bound is not a decimal, min is
// above max, or value is NaN.
func Breached(g cxv1.Guardrail, value float64) (breached bool, evidence string, err error) {
	if math.IsNaN(value) {
		return false, "", fmt.Errorf("guardrail %s: value is NaN", g.Name)
	}
	if g.Max == nil && g.Min == nil {
		return false, "", fmt.Errorf("guardrail %s: set max and/or min", g.Name)
	}
	var lo, hi float64
	if g.Min != nil {
		if lo, err = cxv1.ParseDecimal(*g.Min); err != nil {
			return false, "", fmt.Errorf("guardrail %s: min: %w", g.Name, err)
		}
	}
	if g.Max != nil {
		if hi, err = cxv1.ParseDecimal(*g.Max); err != nil {
			return false, "", fmt.Errorf("guardrail %s: max: %w", g.Name, err)
		}
	}
	if g.Min != nil && g.Max != nil && lo > hi {
		return false, "", fmt.Errorf("guardrail %s: min %s is above max %s", g.Name, *g.Min, *g.Max)
	}
	v := formatValue(value)
	switch {
	case g.Max != nil && value > hi:
		return true, fmt.Sprintf("%s %s > max %s", g.Name, v, *g.Max), nil
	case g.Min != nil && value < lo:
		return true, fmt.Sprintf("%s %s < min %s", g.Name, v, *g.Min), nil
	case g.Min != nil && g.Max != nil:
		return false, fmt.Sprintf("%s %s within min %s and max %s", g.Name, v, *g.Min, *g.Max), nil
	case g.Max != nil:
		return false, fmt.Sprintf("%s %s <= max %s", g.Name, v, *g.Max), nil
	default:
		return false, fmt.Sprintf("%s %s >= min %s", g.Name, v, *g.Min), nil
	}
}

// formatValue prints a value in its shortest exact form, in plain decimals
// unless it is very small or very large.
func formatValue(f float64) string {
	if a := math.Abs(f); f == 0 || (a >= 1e-6 && a < 1e15) {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
