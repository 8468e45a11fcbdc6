package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// Trigger names an event kind users subscribe to, as in Argo's
// notifications (notifications.rapport.dev/subscribe.<trigger>.<service>).
type Trigger string

// The triggers. Each event is derived from what the experiment's status
// records, so it is only ever sent after the status that holds it was written.
const (
	// TriggerRolledBack: a variant was rolled back in a segment (one event per
	// status.rollbacks entry).
	TriggerRolledBack Trigger = "on-rolled-back"
	// TriggerAwaitingPromotion: a Manual-promotion experiment waits at its
	// last step for `kubectl cx promote` (Ready, reason AwaitingPromotion).
	TriggerAwaitingPromotion Trigger = "on-awaiting-promotion"
	// TriggerPromoted: the experiment ended Succeeded; each segment serves
	// its chosen variant.
	TriggerPromoted Trigger = "on-promoted"
	// TriggerStalled: the experiment cannot go on without a human (condition
	// Stalled True: invalid spec, conflict, rolled back everywhere).
	TriggerStalled Trigger = "on-stalled"
	// TriggerSampleRatioMismatch: responses per variant do not match the
	// traffic weights (condition SampleRatioMismatch True).
	TriggerSampleRatioMismatch Trigger = "on-sample-ratio-mismatch"
)

// Triggers lists every trigger, in a stable order.
var Triggers = []Trigger{TriggerRolledBack, TriggerAwaitingPromotion, TriggerPromoted, TriggerStalled, TriggerSampleRatioMismatch}

// Condition types the events read that the API package does not define yet
// in this branch (the kstatus and sample-ratio work defines them): the names
// are the contract of docs/notes.
const (
	conditionStalled             = "Stalled"
	conditionSampleRatioMismatch = "SampleRatioMismatch"
)

// Event is one thing worth telling people about an experiment, with its
// evidence. ID is stable: the same recorded status always yields the same
// IDs, so deliveries can be remembered across restarts.
type Event struct {
	ID      string  `json:"id"`
	Trigger Trigger `json:"trigger"`
	// At is when it happened, as the status records it (zero when the
	// status has no time for it; the notifier then uses when it first saw it).
	At time.Time `json:"at"`

	// DocumentExperiment identifies the experiment (inline in the JSON, as
	// the Document's "experiment").
	DocumentExperiment

	// EventDetails are the rollback, condition or promotion the event is
	// about (inline in the JSON, as in the Document).
	EventDetails
	// Message says what happened in one line, for people.
	Message string `json:"message"`
}

// EventDetails are what an Event and its Document say about a rollback, a
// condition or a promotion.
type EventDetails struct {
	// Segment, Variant, Reason, Responses and Evidence describe a rollback
	// (Reason is also the condition reason of stalled and sample-ratio events).
	Segment   string `json:"segment,omitempty"`
	Variant   string `json:"variant,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Responses int64  `json:"responses,omitempty"`
	Evidence  string `json:"evidence,omitempty"`
	// Promoted maps each segment to the variant it serves (promoted events).
	Promoted []SegmentChoice `json:"promoted,omitempty"`
}

// SegmentChoice is the variant a segment serves after promotion.
type SegmentChoice struct {
	Segment string `json:"segment"`
	Variant string `json:"variant"`
}

// Events derives the events an experiment's status records, oldest first
// within each trigger. It is a pure function of the object.
func Events(exp *cxv1.CXExperiment) []Event {
	st := &exp.Status
	run := max(st.Run, 1)
	base := Event{DocumentExperiment: DocumentExperiment{
		Namespace: exp.Namespace, Name: exp.Name, UID: string(exp.UID), Run: run,
		Phase: string(st.Phase), Step: st.CurrentStep, Steps: int32(len(exp.Spec.Steps)),
	}}
	if base.Phase == "" {
		base.Phase = string(cxv1.PhasePending)
	}
	var out []Event
	add := func(e Event, key ...string) {
		e.ID = eventID(exp, run, e.Trigger, key...)
		out = append(out, e)
	}

	for _, rb := range st.Rollbacks {
		e := base
		e.Trigger, e.At = TriggerRolledBack, rb.At.UTC()
		e.Segment, e.Variant, e.Reason, e.Responses, e.Evidence, e.Step = rb.Segment, rb.Variant, string(rb.Reason), rb.Responses, rb.Evidence, rb.Step
		e.Message = fmt.Sprintf("%s rolled back in segment %s at step %d/%d (%s after %d responses)", rb.Variant, rb.Segment, rb.Step, base.Steps, rb.Reason, rb.Responses)
		if rb.Evidence != "" {
			e.Message += ": " + rb.Evidence
		}
		add(e, rb.Segment, rb.Variant, rb.At.UTC().Format(time.RFC3339Nano))
	}

	if c := meta.FindStatusCondition(st.Conditions, cxv1.ConditionReady); c != nil && c.Status == metav1.ConditionTrue && c.Reason == cxv1.ReasonAwaitingPromotion {
		e := base
		e.Trigger = TriggerAwaitingPromotion
		e.Message = fmt.Sprintf("waiting at step %d/%d for a manual promotion ('kubectl cx promote %s -n %s')", st.CurrentStep, base.Steps, exp.Name, exp.Namespace)
		if c.Message != "" {
			e.Message += ": " + c.Message
		}
		add(e, fmt.Sprint(st.CurrentStep))
	}

	if st.Phase == cxv1.PhaseSucceeded {
		e := base
		e.Trigger = TriggerPromoted
		if st.CompletedAt != nil {
			e.At = st.CompletedAt.UTC()
		}
		control := ""
		if c := exp.Spec.ControlVariant(); c != nil {
			control = c.Name
		}
		parts := make([]string, 0, len(st.Segments))
		for _, seg := range st.Segments {
			v := seg.Promoted
			if v == "" {
				v = control
			}
			e.Promoted = append(e.Promoted, SegmentChoice{Segment: seg.Name, Variant: v})
			parts = append(parts, seg.Name+" -> "+v)
		}
		e.Message = "promoted: " + strings.Join(parts, ", ")
		add(e, e.At.Format(time.RFC3339Nano))
	}

	for _, ct := range []struct {
		typ     string
		trigger Trigger
		what    string
	}{
		{conditionStalled, TriggerStalled, "stalled"},
		{conditionSampleRatioMismatch, TriggerSampleRatioMismatch, "sample-ratio mismatch"},
	} {
		c := meta.FindStatusCondition(st.Conditions, ct.typ)
		if c == nil || c.Status != metav1.ConditionTrue {
			continue
		}
		e := base
		e.Trigger, e.At, e.Reason = ct.trigger, c.LastTransitionTime.UTC(), c.Reason
		e.Message = ct.what + " (" + c.Reason + ")"
		if c.Message != "" {
			e.Message += ": " + c.Message
		}
		add(e, c.Reason, c.LastTransitionTime.UTC().Format(time.RFC3339))
	}
	return out
}

// eventID hashes what identifies an event: the experiment's UID (a new
// experiment of the same name starts afresh), the run, the trigger and the
// trigger's own key.
func eventID(exp *cxv1.CXExperiment, run int32, t Trigger, key ...string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%s", exp.UID, run, t)
	for _, k := range key {
		fmt.Fprintf(h, "\x00%s", k)
	}
	return hex.EncodeToString(h.Sum(nil))[:20]
}
