package v1alpha1

import (
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestParseDecimal(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{in: "3", want: 3},
		{in: "2.5", want: 2.5},
		{in: "-10", want: -10},
		{in: "0.01", want: 0.01},
		{in: "99.9", want: 99.9},
		{in: "000", want: 0},
		{in: "", wantErr: true},
		{in: "+3", wantErr: true},
		{in: "1e3", wantErr: true},
		{in: "0x10", wantErr: true},
		{in: "NaN", wantErr: true},
		{in: "Inf", wantErr: true},
		{in: "3.", wantErr: true},
		{in: ".5", wantErr: true},
		{in: "1,5", wantErr: true},
		{in: " 3", wantErr: true},
		{in: "1234567890123", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDecimal(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseDecimal(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseDecimal(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseDecimal(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestSatisfactionSettings(t *testing.T) {
	tests := []struct {
		name    string
		in      Satisfaction
		want    SatisfactionSettings
		wantErr string
	}{
		{
			name: "CSAT defaults",
			in:   Satisfaction{},
			want: SatisfactionSettings{Metric: MetricCSAT, ScoreMin: 1, ScoreMax: 5, SatisfiedAtOrAbove: 4, MaxDrop: 3, Confidence: 0.95, MinResponses: 100, Interval: 30 * time.Second},
		},
		{
			name: "CSAT on 1..7 with a floor",
			in: Satisfaction{Metric: MetricCSAT, ScaleMax: ptr[int32](7), SatisfiedAtOrAbove: ptr[int32](5), Minimum: ptr("80"),
				MaxDrop: "2.5", Confidence: "99", MinResponses: 50, Interval: metav1.Duration{Duration: time.Minute}},
			want: SatisfactionSettings{Metric: MetricCSAT, ScoreMin: 1, ScoreMax: 7, SatisfiedAtOrAbove: 5, Minimum: ptr(80.0), MaxDrop: 2.5, Confidence: 0.99, MinResponses: 50, Interval: time.Minute},
		},
		{
			name: "NPS with a negative floor",
			in:   Satisfaction{Metric: MetricNPS, Minimum: ptr("-20"), MaxDrop: "5"},
			want: SatisfactionSettings{Metric: MetricNPS, ScoreMin: 0, ScoreMax: 10, Minimum: ptr(-20.0), MaxDrop: 5, Confidence: 0.95, MinResponses: 100, Interval: 30 * time.Second},
		},
		{name: "CSAT floor below zero", in: Satisfaction{Minimum: ptr("-1")}, wantErr: "spec.satisfaction.minimum"},
		{name: "satisfied above scale", in: Satisfaction{SatisfiedAtOrAbove: ptr[int32](6)}, wantErr: "spec.satisfaction.satisfiedAtOrAbove"},
		{name: "bad maxDrop", in: Satisfaction{MaxDrop: "three"}, wantErr: "spec.satisfaction.maxDrop"},
		{name: "maxDrop too large", in: Satisfaction{MaxDrop: "60"}, wantErr: "spec.satisfaction.maxDrop"},
		{name: "confidence too low", in: Satisfaction{Confidence: "50"}, wantErr: "spec.satisfaction.confidence"},
		{name: "unknown metric", in: Satisfaction{Metric: "CES"}, wantErr: "spec.satisfaction.metric"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.Settings()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Settings() error = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Settings(): %v", err)
			}
			if (got.Minimum == nil) != (tt.want.Minimum == nil) || (got.Minimum != nil && *got.Minimum != *tt.want.Minimum) {
				t.Fatalf("Minimum = %v, want %v", got.Minimum, tt.want.Minimum)
			}
			got.Minimum, tt.want.Minimum = nil, nil
			if got != tt.want {
				t.Fatalf("Settings() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// decimalPattern is the syntax the CRD's patterns give decimals; isDecimal
// must accept exactly what it accepts.
var decimalPattern = regexp.MustCompile(`^-?[0-9]{1,12}(\.[0-9]{1,9})?$`)

var decimalSeeds = []string{"3", "2.5", "-10", "0.01", "000", "", "-", "--1", "+3", "1e3", "0x10", "NaN", "3.", ".5", "1.2.3",
	"1,5", " 3", "3 ", "123456789012", "1234567890123", "1.123456789", "1.1234567890", "-0", "١", "1\n"}

func TestIsDecimalMatchesThePattern(t *testing.T) {
	for _, s := range decimalSeeds {
		if got, want := isDecimal(s), decimalPattern.MatchString(s); got != want {
			t.Errorf("isDecimal(%q) = %v, the pattern says %v", s, got, want)
		}
	}
}

// FuzzIsDecimal: go test ./api/v1alpha1/ -run '^$' -fuzz FuzzIsDecimal
func FuzzIsDecimal(f *testing.F) {
	for _, s := range decimalSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isDecimal(s), decimalPattern.MatchString(s); got != want {
			t.Fatalf("isDecimal(%q) = %v, the pattern says %v", s, got, want)
		}
	})
}
