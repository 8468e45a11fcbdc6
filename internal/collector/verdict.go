package collector

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// VerdictAPIVersion identifies the JSON shape of Verdict. Fields may be
// added; a field is never renamed, retyped or removed without a new version.
const VerdictAPIVersion = "collector.rapport.dev/v1"

// VerdictKind is the kind of the verdict document.
const VerdictKind = "ExperimentVerdict"

// GateDecision is what a progressive-delivery tool should do with its
// canary, read from Rapport's verdicts: the customer-satisfaction gate.
type GateDecision string

const (
	// GatePromote means every variant asked about is confidently non-inferior
	// (NonInferior, or already Promoted or Retired) in every segment asked
	// about.
	GatePromote GateDecision = "Promote"
	// GateWait means no decision yet (too few responses, inconclusive, the
	// experiment has not measured yet). Ask again later.
	GateWait GateDecision = "Wait"
	// GateRollback means a variant asked about is Inferior or was rolled back in a
	// segment asked about, or the experiment ended RolledBack or Failed.
	GateRollback GateDecision = "Rollback"
)

// Verdict is the answer of GET .../experiments/{name}/verdict: the latest
// verdict per segment and variant, as numbers, and the gate decision. Scores
// and differences are in points (CSAT 0..100, NPS -100..100); optional fields
// are omitted when the status has no value yet.
type Verdict struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	// Run is the experiment's run (1, then +1 per retry).
	Run int32 `json:"run"`
	// Phase is the experiment's phase (Pending, Progressing, Paused,
	// Succeeded, RolledBack, Failed).
	Phase string `json:"phase"`
	// Step is the current step (0 before the first), of Steps.
	Step  int32 `json:"step"`
	Steps int   `json:"steps"`
	// MeasuredAt is when satisfaction was last measured.
	MeasuredAt *time.Time `json:"measuredAt,omitempty"`
	// Metric is CSAT or NPS; MaxDrop the tolerated drop in points;
	// Confidence the level of the intervals in percent.
	Metric     string  `json:"metric"`
	MaxDrop    float64 `json:"maxDrop"`
	Confidence float64 `json:"confidence"`
	// Decision is the gate's answer over the variants and segments asked
	// about (all, unless the request names a variant or a segment).
	Decision GateDecision `json:"decision"`
	// Reason explains Decision in one line, with the numbers.
	Reason string `json:"reason"`
	// Segments are the segments asked about, each with the control and the
	// variants asked about.
	Segments []VerdictSegment `json:"segments"`
}

// VerdictSegment is one segment of a Verdict.
type VerdictSegment struct {
	Name string `json:"name"`
	// Promoted is the variant promoted in the segment, if any.
	Promoted string           `json:"promoted,omitempty"`
	Variants []VerdictVariant `json:"variants"`
}

// VerdictVariant is one variant's verdict in one segment.
type VerdictVariant struct {
	Name    string `json:"name"`
	Control bool   `json:"control"`
	// State is Control, Active, RolledBack, Promoted or Retired.
	State string `json:"state"`
	// Weight is the percentage of the segment's traffic it gets now.
	Weight    int32 `json:"weight"`
	Responses int64 `json:"responses"`
	// Verdict is InsufficientData, Inconclusive, NonInferior or Inferior
	// (empty for the control).
	Verdict            string    `json:"verdict,omitempty"`
	Score              *float64  `json:"score,omitempty"`
	ScoreInterval      *Interval `json:"scoreInterval,omitempty"`
	Difference         *float64  `json:"difference,omitempty"`
	DifferenceInterval *Interval `json:"differenceInterval,omitempty"`
	// Decision is the gate's answer for this variant in this segment
	// (empty for the control).
	Decision GateDecision `json:"decision,omitempty"`
	// Message explains the verdict with the numbers.
	Message string `json:"message,omitempty"`
}

// Interval is a closed interval in points.
type Interval struct {
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
}

// VerdictFilter narrows a verdict to one variant and/or one segment; empty
// fields mean all.
type VerdictFilter struct {
	Variant, Segment string
}

// BuildVerdict reads exp's status into a Verdict and decides the gate. It
// fails (400) when the filter names a variant or segment exp does not have,
// so that a typo in a gate's configuration is an error, never a silent Wait.
func BuildVerdict(exp *cxv1.CXExperiment, f VerdictFilter) (*Verdict, *Error) {
	control := ""
	if c := exp.Spec.ControlVariant(); c != nil {
		control = c.Name
	}
	if f.Variant != "" {
		if !slices.ContainsFunc(exp.Spec.Variants, func(v cxv1.Variant) bool { return v.Name == f.Variant }) {
			return nil, errorf(http.StatusBadRequest, "variant %q is not a variant of experiment %s; use one of %s", clip(f.Variant), exp.Name, strings.Join(variantNames(exp, control), ", "))
		}
		if f.Variant == control {
			return nil, errorf(http.StatusBadRequest, "variant %q is the control of experiment %s; ask about a variant compared with it: %s", f.Variant, exp.Name, strings.Join(variantNames(exp, control), ", "))
		}
	}
	if f.Segment != "" && !slices.Contains(exp.Spec.SegmentNames(), f.Segment) {
		return nil, errorf(http.StatusBadRequest, "segment %q is not a segment of experiment %s; use one of %s", clip(f.Segment), exp.Name, strings.Join(exp.Spec.SegmentNames(), ", "))
	}

	st := &exp.Status
	v := &Verdict{
		APIVersion: VerdictAPIVersion, Kind: VerdictKind,
		Namespace: exp.Namespace, Name: exp.Name,
		Run: max(st.Run, 1), Phase: string(st.Phase), Step: st.CurrentStep, Steps: len(exp.Spec.Steps),
		Segments: []VerdictSegment{},
	}
	if v.Phase == "" {
		v.Phase = string(cxv1.PhasePending)
	}
	if st.MeasuredAt != nil {
		t := st.MeasuredAt.UTC()
		v.MeasuredAt = &t
	}
	if s, err := exp.Spec.Satisfaction.Settings(); err == nil {
		v.Metric, v.MaxDrop, v.Confidence = string(s.Metric), s.MaxDrop, s.Confidence*100
	}

	for _, seg := range st.Segments {
		if f.Segment != "" && seg.Name != f.Segment {
			continue
		}
		out := VerdictSegment{Name: seg.Name, Promoted: seg.Promoted, Variants: []VerdictVariant{}}
		for _, vs := range seg.Variants {
			isControl := vs.State == cxv1.StateControl || vs.Name == control
			if !isControl && f.Variant != "" && vs.Name != f.Variant {
				continue
			}
			vv := verdictVariant(vs, isControl)
			if !isControl {
				vv.Decision = variantDecision(vs)
			}
			out.Variants = append(out.Variants, vv)
		}
		v.Segments = append(v.Segments, out)
	}
	v.Decision, v.Reason = gate(exp, v.Segments)
	return v, nil
}

func variantNames(exp *cxv1.CXExperiment, control string) []string {
	var out []string
	for _, v := range exp.Spec.Variants {
		if v.Name != control {
			out = append(out, v.Name)
		}
	}
	return out
}

// verdictVariant turns a variant's status strings into numbers; values the
// status does not hold (yet) stay nil.
func verdictVariant(vs cxv1.VariantStatus, control bool) VerdictVariant {
	out := VerdictVariant{
		Name: vs.Name, Control: control, State: string(vs.State), Weight: vs.Weight,
		Responses: vs.Responses, Verdict: string(vs.Verdict), Message: vs.Message,
	}
	if x, err := cxv1.ParsePoints(vs.Score); err == nil && vs.Score != "" {
		out.Score = &x
	}
	if x, err := cxv1.ParsePoints(vs.Difference); err == nil && vs.Difference != "" {
		out.Difference = &x
	}
	if lo, hi, err := cxv1.ParseInterval(vs.ScoreInterval); err == nil {
		out.ScoreInterval = &Interval{Lower: lo, Upper: hi}
	}
	if lo, hi, err := cxv1.ParseInterval(vs.DifferenceInterval); err == nil {
		out.DifferenceInterval = &Interval{Lower: lo, Upper: hi}
	}
	return out
}

// variantDecision is the gate's answer for one variant in one segment.
func variantDecision(vs cxv1.VariantStatus) GateDecision {
	switch {
	case vs.State == cxv1.StateRolledBack || vs.Verdict == cxv1.VerdictInferior:
		return GateRollback
	case vs.State == cxv1.StatePromoted || vs.State == cxv1.StateRetired || vs.Verdict == cxv1.VerdictNonInferior:
		return GatePromote
	}
	return GateWait
}

// gate combines the variants' answers: any Rollback wins, then any Wait;
// Promote needs every variant asked about to be Promote. An experiment that
// ended RolledBack or Failed answers Rollback whatever its variants say.
func gate(exp *cxv1.CXExperiment, segments []VerdictSegment) (GateDecision, string) {
	phase := exp.Status.Phase
	if phase == cxv1.PhaseFailed {
		msg := "the experiment failed"
		if c := meta.FindStatusCondition(exp.Status.Conditions, cxv1.ConditionReady); c != nil && c.Message != "" {
			msg += ": " + c.Message
		}
		return GateRollback, msg
	}
	var waiting []string
	pairs := 0
	for _, seg := range segments {
		for _, v := range seg.Variants {
			if v.Control {
				continue
			}
			pairs++
			switch v.Decision {
			case GateRollback:
				return GateRollback, fmt.Sprintf("%s in segment %s: %s", v.Name, seg.Name, rollbackEvidence(exp, seg.Name, v))
			case GateWait:
				waiting = append(waiting, fmt.Sprintf("%s in segment %s is %s after %d responses", v.Name, seg.Name, orWord(v.Verdict, "not measured"), v.Responses))
			}
		}
	}
	if phase == cxv1.PhaseRolledBack {
		return GateRollback, "the experiment was rolled back"
	}
	if pairs == 0 {
		p := string(phase)
		if p == "" {
			p = string(cxv1.PhasePending)
		}
		return GateWait, fmt.Sprintf("no verdict yet: the experiment has not measured (phase %s)", p)
	}
	if len(waiting) > 0 {
		return GateWait, "waiting for a verdict: " + strings.Join(waiting, "; ")
	}
	return GatePromote, fmt.Sprintf("every variant asked about is non-inferior in every segment asked about (%d verdicts)", pairs)
}

// rollbackEvidence is the evidence recorded for a rollback of the variant in
// the segment, else the variant's own message.
func rollbackEvidence(exp *cxv1.CXExperiment, segment string, v VerdictVariant) string {
	for i := len(exp.Status.Rollbacks) - 1; i >= 0; i-- {
		rb := exp.Status.Rollbacks[i]
		if rb.Segment == segment && rb.Variant == v.Name {
			if rb.Evidence != "" {
				return fmt.Sprintf("rolled back (%s): %s", rb.Reason, rb.Evidence)
			}
			return fmt.Sprintf("rolled back (%s)", rb.Reason)
		}
	}
	if v.Message != "" {
		return v.Message
	}
	return orWord(v.Verdict, v.State)
}

func orWord(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}
