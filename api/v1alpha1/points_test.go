package v1alpha1

import (
	"math"
	"testing"
)

func TestPointsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		x    float64
		want string
	}{
		{86.24, "86.2"}, {86.25, "86.2"}, {-1.86, "-1.9"}, {0, "0.0"}, {100, "100.0"}, {-100, "-100.0"}, {12.0000001, "12.0"},
	} {
		got := FormatPoints(tc.x)
		if got != tc.want {
			t.Errorf("FormatPoints(%v) = %q, want %q", tc.x, got, tc.want)
		}
		back, err := ParsePoints(got)
		if err != nil {
			t.Fatalf("ParsePoints(%q): %v", got, err)
		}
		if math.Abs(back-tc.x) > 0.05+1e-9 {
			t.Errorf("ParsePoints(FormatPoints(%v)) = %v: more than the rounding away", tc.x, back)
		}
	}
	for _, bad := range []string{"", "n/a", "NaN", "+1.0", "1e3", "86,2"} {
		if _, err := ParsePoints(bad); err == nil {
			t.Errorf("ParsePoints(%q) accepted", bad)
		}
	}
}

func TestIntervalRoundTrip(t *testing.T) {
	s := FormatInterval(-6.04, 2.46)
	if s != "[-6.0, 2.5]" {
		t.Fatalf("FormatInterval = %q", s)
	}
	lo, hi, err := ParseInterval(s)
	if err != nil {
		t.Fatal(err)
	}
	if lo != -6 || hi != 2.5 {
		t.Fatalf("ParseInterval(%q) = %v, %v", s, lo, hi)
	}
	if _, hi, err := ParseInterval(" [83.1,89.0] "); err != nil || hi != 89 {
		t.Fatalf("spaces: %v, %v", hi, err)
	}
	for _, bad := range []string{"", "83.1, 89.0", "[83.1]", "[a, 1]", "[1, b]", "[1, 2"} {
		if _, _, err := ParseInterval(bad); err == nil {
			t.Errorf("ParseInterval(%q) accepted", bad)
		}
	}
}
