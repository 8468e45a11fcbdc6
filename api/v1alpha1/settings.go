package v1alpha1

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// isDecimal reports whether s has the only decimal syntax the API accepts,
// `^-?[0-9]{1,12}(\.[0-9]{1,9})?$`: an optional minus sign, digits, and an
// optional fraction. No exponents, no hex, no NaN or Inf, no leading '+'.
// (Written out, not as a regular expression: the collector checks an
// experiment's settings with every answer.)
func isDecimal(s string) bool {
	whole, fraction, dot := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	return digits(whole, 12) && (!dot || digits(fraction, 9))
}

// digits reports whether s is 1 to most ASCII digits.
func digits(s string, most int) bool {
	if len(s) == 0 || len(s) > most {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ParseDecimal parses a decimal string of the API ("2.5", "-10", "0.01").
// It is the one place where points and percentages become numbers.
func ParseDecimal(s string) (float64, error) {
	if !isDecimal(s) {
		return 0, fmt.Errorf("%q is not a decimal number such as \"2.5\"", s)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a decimal number: %w", s, err)
	}
	return v, nil
}

// SatisfactionSettings is spec.satisfaction with defaults applied and
// decimals parsed.
type SatisfactionSettings struct {
	Metric SatisfactionMetricKind
	// ScoreMin and ScoreMax bound the scale: 1..scaleMax for CSAT, 0..10 for NPS.
	ScoreMin, ScoreMax int
	// SatisfiedAtOrAbove is the lowest satisfied CSAT score (0 for NPS).
	SatisfiedAtOrAbove int
	// Minimum is the absolute floor in points, nil when unset.
	Minimum *float64
	// MaxDrop is the tolerated drop against control, in points.
	MaxDrop float64
	// Confidence is a fraction in (0, 1), e.g. 0.95.
	Confidence   float64
	MinResponses int64
	Interval     time.Duration
}

// Scores is the number of distinct scores on the scale.
func (s SatisfactionSettings) Scores() int { return s.ScoreMax - s.ScoreMin + 1 }

// Settings applies defaults and parses spec.satisfaction. Errors name the
// field; the CRD schema rejects the same input first, so an error here means
// the object bypassed validation (or the schema is older than the controller).
func (s Satisfaction) Settings() (SatisfactionSettings, error) {
	out := SatisfactionSettings{Metric: s.Metric, MinResponses: int64(s.MinResponses), Interval: s.Interval.Duration}
	if out.Metric == "" {
		out.Metric = MetricCSAT
	}
	switch out.Metric {
	case MetricCSAT:
		out.ScoreMin, out.ScoreMax = 1, 5
		if s.ScaleMax != nil {
			out.ScoreMax = int(*s.ScaleMax)
		}
		if out.ScoreMax < 2 || out.ScoreMax > 10 {
			return out, fmt.Errorf("spec.satisfaction.scaleMax: %d is outside 2..10", out.ScoreMax)
		}
		out.SatisfiedAtOrAbove = out.ScoreMax - 1
		if s.SatisfiedAtOrAbove != nil {
			out.SatisfiedAtOrAbove = int(*s.SatisfiedAtOrAbove)
		}
		if out.SatisfiedAtOrAbove < 1 || out.SatisfiedAtOrAbove > out.ScoreMax {
			return out, fmt.Errorf("spec.satisfaction.satisfiedAtOrAbove: %d is outside the scale 1..%d", out.SatisfiedAtOrAbove, out.ScoreMax)
		}
	case MetricNPS:
		out.ScoreMin, out.ScoreMax = 0, 10
	default:
		return out, fmt.Errorf("spec.satisfaction.metric: %q is not CSAT or NPS", s.Metric)
	}
	lo := 0.0
	if out.Metric == MetricNPS {
		lo = -100
	}
	if s.Minimum != nil {
		v, err := ParseDecimal(*s.Minimum)
		if err != nil {
			return out, fmt.Errorf("spec.satisfaction.minimum: %w", err)
		}
		if v < lo || v > 100 {
			return out, fmt.Errorf("spec.satisfaction.minimum: %s is outside %v..100 points", *s.Minimum, lo)
		}
		out.Minimum = &v
	}
	maxDrop := s.MaxDrop
	if maxDrop == "" {
		maxDrop = "3"
	}
	v, err := ParseDecimal(maxDrop)
	if err != nil {
		return out, fmt.Errorf("spec.satisfaction.maxDrop: %w", err)
	}
	if v < 0 || v > 50 {
		return out, fmt.Errorf("spec.satisfaction.maxDrop: %s is outside 0..50 points", maxDrop)
	}
	out.MaxDrop = v
	confidence := s.Confidence
	if confidence == "" {
		confidence = "95"
	}
	c, err := ParseDecimal(confidence)
	if err != nil {
		return out, fmt.Errorf("spec.satisfaction.confidence: %w", err)
	}
	if c < 80 || c > 99.9 {
		return out, fmt.Errorf("spec.satisfaction.confidence: %s is outside 80..99.9 percent", confidence)
	}
	out.Confidence = c / 100
	if out.MinResponses <= 0 {
		out.MinResponses = 100
	}
	if out.Interval <= 0 {
		out.Interval = 30 * time.Second
	}
	return out, nil
}

// RunSettings returns the settings a run starting now is judged by:
// spec.satisfaction with defaults applied.
func (s Satisfaction) RunSettings() (RunSettings, error) {
	set, err := s.Settings()
	if err != nil {
		return RunSettings{}, err
	}
	out := RunSettings{
		Metric: set.Metric, ScaleMax: int32(set.ScoreMax), MinResponses: int32(set.MinResponses),
		MaxDrop: s.MaxDrop, Confidence: s.Confidence, Minimum: s.Minimum,
	}
	if out.MaxDrop == "" {
		out.MaxDrop = "3"
	}
	if out.Confidence == "" {
		out.Confidence = "95"
	}
	if set.Metric == MetricCSAT {
		out.SatisfiedAtOrAbove = int32(set.SatisfiedAtOrAbove)
	}
	if out.Minimum != nil {
		m := *out.Minimum
		out.Minimum = &m
	}
	return out, nil
}

// Satisfaction turns run settings back into the judgement fields of
// spec.satisfaction, with src's source and interval.
func (r RunSettings) Satisfaction(src Satisfaction) Satisfaction {
	out := src
	out.Metric = r.Metric
	scaleMax := r.ScaleMax
	out.ScaleMax = &scaleMax
	out.SatisfiedAtOrAbove = nil
	if r.Metric == MetricCSAT {
		sat := r.SatisfiedAtOrAbove
		out.SatisfiedAtOrAbove = &sat
	}
	out.Minimum = r.Minimum
	out.MaxDrop, out.Confidence, out.MinResponses = r.MaxDrop, r.Confidence, r.MinResponses
	return out
}

// JudgedSettings returns the settings the experiment's current run is judged
// by: status.settings when the run recorded them, else spec.satisfaction.
// Source and interval always come from the spec: they say where and how
// often to read, not how to judge.
func (e *CXExperiment) JudgedSettings() (SatisfactionSettings, error) {
	if e.Status.Settings == nil {
		return e.Spec.Satisfaction.Settings()
	}
	set, err := e.Status.Settings.Satisfaction(e.Spec.Satisfaction).Settings()
	if err != nil {
		return set, fmt.Errorf("status.settings (the settings this run started with): %w", err)
	}
	return set, nil
}

// SettingsChanged reports whether spec.satisfaction now judges differently
// from the settings the current run started with, and describes the
// difference ("maxDrop 3 -> 2, confidence 95 -> 90").
func (e *CXExperiment) SettingsChanged() (bool, string) {
	if e.Status.Settings == nil {
		return false, ""
	}
	now, err := e.Spec.Satisfaction.RunSettings()
	if err != nil {
		return false, ""
	}
	was := *e.Status.Settings
	var diffs []string
	add := func(field, a, b string) {
		if a != b {
			diffs = append(diffs, fmt.Sprintf("%s %s -> %s", field, a, b))
		}
	}
	str := func(p *string) string {
		if p == nil {
			return "unset"
		}
		return *p
	}
	add("metric", string(was.Metric), string(now.Metric))
	add("scaleMax", strconv.Itoa(int(was.ScaleMax)), strconv.Itoa(int(now.ScaleMax)))
	add("satisfiedAtOrAbove", strconv.Itoa(int(was.SatisfiedAtOrAbove)), strconv.Itoa(int(now.SatisfiedAtOrAbove)))
	add("minimum", str(was.Minimum), str(now.Minimum))
	decimal := func(field, a, b string) {
		x, errA := ParseDecimal(a)
		y, errB := ParseDecimal(b)
		if errA != nil || errB != nil || x != y { // "3" and "3.0" are the same threshold
			add(field, a, b)
		}
	}
	decimal("maxDrop", was.MaxDrop, now.MaxDrop)
	decimal("confidence", was.Confidence, now.Confidence)
	add("minResponses", strconv.Itoa(int(was.MinResponses)), strconv.Itoa(int(now.MinResponses)))
	return len(diffs) > 0, strings.Join(diffs, ", ")
}

// ControlVariant returns the control variant, or nil when there is none.
func (s *CXExperimentSpec) ControlVariant() *Variant {
	for i := range s.Variants {
		if s.Variants[i].Control {
			return &s.Variants[i]
		}
	}
	return nil
}

// SegmentNames returns the segments the experiment is judged in: its
// CustomerSegments, or AllSegment when it has none.
func (s *CXExperimentSpec) SegmentNames() []string {
	if len(s.Segments) == 0 {
		return []string{AllSegment}
	}
	return s.Segments
}

// BrowserEnabled reports whether customers' browsers may post answers for
// the experiment to the collector's public endpoint.
func (c *CollectorSource) BrowserEnabled() bool {
	return c != nil && c.Browser != nil
}
