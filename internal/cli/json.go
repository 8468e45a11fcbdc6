package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/rapport-dev/rapport/internal/analysis"
)

// The types and converters that the JSON documents of `kubectl cx report`
// and `kubectl cx analyze` share.

// Interval is a closed interval in points.
type Interval struct {
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
}

// AnalysisSettings are the decision engine's settings: those of
// `kubectl cx analyze`, and spec.satisfaction's in the report.
type AnalysisSettings struct {
	// Metric is CSAT or NPS.
	Metric string `json:"metric"`
	// ScaleMin..ScaleMax is the survey scale (1..scaleMax for CSAT, 0..10 for NPS).
	ScaleMin int `json:"scaleMin"`
	ScaleMax int `json:"scaleMax"`
	// SatisfiedAtOrAbove is the lowest satisfied CSAT score (CSAT only).
	SatisfiedAtOrAbove int `json:"satisfiedAtOrAbove,omitempty"`
	// MaxDrop is the tolerated drop against the control, in points.
	MaxDrop float64 `json:"maxDrop"`
	// Minimum is the absolute floor in points, when set.
	Minimum *float64 `json:"minimum,omitempty"`
	// Confidence is in percent, e.g. 95.
	Confidence float64 `json:"confidence"`
	// MinResponses is needed per variant and segment before any verdict.
	MinResponses int64 `json:"minResponses"`
}

// optionalPoints reads points of the status (parseFloat); nil when s holds none.
func optionalPoints(s string) *float64 {
	if f, ok := parseFloat(s); ok {
		return &f
	}
	return nil
}

// optionalInterval reads an interval of the status (parseInterval); nil when s
// holds none.
func optionalInterval(s string) *Interval {
	if iv, ok := parseInterval(s); ok {
		return &iv
	}
	return nil
}

// r3 rounds to 0.001: the engine's floats carry noise in their last bits
// that would make scripts and tests depend on the platform.
func r3(x float64) float64 { return math.Round(x*1000) / 1000 }

// r3i is an interval of the engine, rounded to 0.001 (r3).
func r3i(i analysis.Interval) Interval { return Interval{Lower: r3(i.Lower), Upper: r3(i.Upper)} }

// writeJSONDocument writes v as indented JSON, as kubectl does.
func writeJSONDocument(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
