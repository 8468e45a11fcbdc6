package rollout

import (
	"math"
	"strings"
	"testing"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

func ptr[T any](v T) *T { return &v }

func TestBreached(t *testing.T) {
	g := func(min, max *string) cxv1.Guardrail { return cxv1.Guardrail{Name: "error-rate", Min: min, Max: max} }
	for _, tc := range []struct {
		g        cxv1.Guardrail
		value    float64
		breached bool
		evidence string
	}{
		{g(nil, ptr("0.01")), 0.034, true, "error-rate 0.034 > max 0.01"},
		{g(nil, ptr("0.01")), 0.01, false, "error-rate 0.01 <= max 0.01"},
		{g(nil, ptr("0.01")), 0.004, false, "error-rate 0.004 <= max 0.01"},
		{g(ptr("0.5"), nil), 0.25, true, "error-rate 0.25 < min 0.5"},
		{g(ptr("0.5"), nil), 0.5, false, "error-rate 0.5 >= min 0.5"},
		{g(ptr("-1"), ptr("1")), 0, false, "error-rate 0 within min -1 and max 1"},
		{g(ptr("-1"), ptr("1")), 1.5, true, "error-rate 1.5 > max 1"},
		{g(ptr("-1"), ptr("1")), -2, true, "error-rate -2 < min -1"},
		{g(nil, ptr("100")), math.Inf(1), true, "error-rate +Inf > max 100"},
		{g(nil, ptr("1")), 1e-9, false, "error-rate 1e-09 <= max 1"},
		{g(nil, ptr("1")), 1234567.5, true, "error-rate 1234567.5 > max 1"},
	} {
		breached, evidence, err := Breached(tc.g, tc.value)
		if err != nil {
			t.Errorf("Breached(%v) error: %v", tc.value, err)
			continue
		}
		if breached != tc.breached || evidence != tc.evidence {
			t.Errorf("Breached(%v) = %v, %q; want %v, %q", tc.value, breached, evidence, tc.breached, tc.evidence)
		}
	}
	for _, tc := range []struct {
		g     cxv1.Guardrail
		value float64
		want  string
	}{
		{g(nil, nil), 1, "set max and/or min"},
		{g(nil, ptr("1e3")), 1, "max: \"1e3\" is not a decimal"},
		{g(ptr("NaN"), nil), 1, "min: \"NaN\" is not a decimal"},
		{g(ptr("2"), ptr("1")), 1, "min 2 is above max 1"},
		{g(nil, ptr("1")), math.NaN(), "value is NaN"},
	} {
		if _, _, err := Breached(tc.g, tc.value); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Breached(%+v, %v) = %v, want an error containing %q", tc.g, tc.value, err, tc.want)
		}
	}
}
