package v1alpha1

import "testing"

func TestParseInterval(t *testing.T) {
	tests := []struct {
		in           string
		lower, upper float64
		wantErr      bool
	}{
		{in: "[83.1, 89.0]", lower: 83.1, upper: 89},
		{in: " [-16.8, -7.0] ", lower: -16.8, upper: -7},
		{in: "[0,100]", lower: 0, upper: 100},
		{in: "83.1, 89.0", wantErr: true},
		{in: "[83.1 89.0]", wantErr: true},
		{in: "[a, 1]", wantErr: true},
		{in: "[1, b]", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			lo, hi, err := ParseInterval(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseInterval(%q) error %v, want error %v", tc.in, err, tc.wantErr)
			}
			if err == nil && (lo != tc.lower || hi != tc.upper) {
				t.Errorf("ParseInterval(%q) = [%v, %v], want [%v, %v]", tc.in, lo, hi, tc.lower, tc.upper)
			}
		})
	}
	if v, err := ParsePoints(" -1.8"); err != nil || v != -1.8 {
		t.Errorf("ParsePoints(-1.8) = %v, %v", v, err)
	}
}
