package rollout

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// epochTrace lists each segment's epochs as "n@minute:weights".
func epochTrace(st *cxv1.CXExperimentStatus) string {
	var parts []string
	for _, seg := range st.Segments {
		var eps []string
		for _, e := range seg.Epochs {
			eps = append(eps, fmt.Sprintf("%d@%s:%s", e.Epoch, e.StartedAt.Sub(t0), formatEpochWeights(e.Weights)))
		}
		parts = append(parts, fmt.Sprintf("%s(epoch %d) %s", seg.Name, seg.Epoch, strings.Join(eps, " | ")))
	}
	return strings.Join(parts, "\n")
}

func TestEpochsFollowWeights(t *testing.T) {
	segs := []string{"enterprise", "new-customers"}
	s := spec(segs, "one-page")
	good := all(nonInferior(85.5), segs...)
	st := cxv1.CXExperimentStatus{}
	decide := func(at time.Duration, j Judgements) Output {
		out := Decide(Input{Spec: s, Status: &st, Judgements: j, Now: t0.Add(at)})
		st = out.Status
		return out
	}
	decide(0, nil)                     // start: epoch 1 at 5%
	decide(5*time.Minute, good)        // nothing changes
	decide(10*time.Minute, good)       // step 2: epoch 2 at 25%
	decide(12*time.Minute, Judgements{ // rollback in enterprise only: epoch 3 there
		"enterprise": {"one-page": inferior}, "new-customers": {"one-page": nonInferior(86)}})
	decide(45*time.Minute, Judgements{"new-customers": {"one-page": nonInferior(86)}}) // step 3 (50%): epoch 3 in new-customers; enterprise unchanged
	got := epochTrace(&st)
	want := strings.Join([]string{
		"enterprise(epoch 3) 1@0s:control 95%, one-page 5% | 2@10m0s:control 75%, one-page 25% | 3@12m0s:control 100%, one-page 0%",
		"new-customers(epoch 3) 1@0s:control 95%, one-page 5% | 2@10m0s:control 75%, one-page 25% | 3@45m0s:control 50%, one-page 50%",
	}, "\n")
	if got != want {
		t.Errorf("epochs\n%s\nwant\n%s", got, want)
	}
	if st.Settings == nil || st.Settings.MaxDrop != "3" || st.Settings.Confidence != "95" {
		t.Errorf("the run did not record its settings: %+v", st.Settings)
	}
}

func TestEpochsForARunThatPredatesThem(t *testing.T) {
	s := spec(nil, "one-page")
	// A run in progress, written by a controller that did not record epochs.
	st := cxv1.CXExperimentStatus{Phase: cxv1.PhaseProgressing, Run: 1, CurrentStep: 2, StepStartedAt: ptrTime(t0),
		Segments: []cxv1.SegmentStatus{{Name: "all", Variants: []cxv1.VariantStatus{
			{Name: "control", State: cxv1.StateControl, Weight: 75}, {Name: "one-page", State: cxv1.StateActive, Weight: 25}}}}}
	out := Decide(Input{Spec: s, Status: &st, Now: t0.Add(time.Minute)})
	seg := out.Status.Segments[0]
	if seg.Epoch != 1 || len(seg.Epochs) != 1 || !seg.Epochs[0].StartedAt.Equal(ptrMicro(t0.Add(time.Minute))) {
		t.Errorf("epochs after the upgrade: %+v", seg)
	}
}

func TestEpochsFoldBeyondTheLimit(t *testing.T) {
	s := spec(nil, "one-page")
	st := cxv1.CXExperimentStatus{}
	out := Decide(Input{Spec: s, Status: &st, Now: t0})
	st = out.Status
	// Fill the segment up to the limit with fake epochs.
	seg := &st.Segments[0]
	for len(seg.Epochs) < cxv1.MaxEpochs {
		seg.Epochs = append(seg.Epochs, cxv1.EpochStatus{Epoch: int32(len(seg.Epochs) + 1), StartedAt: seg.Epochs[0].StartedAt,
			Weights: []cxv1.VariantWeight{{Variant: "control", Weight: 1}}})
	}
	out = Decide(Input{Spec: s, Status: &st, Now: t0.Add(time.Minute)})
	seg = &out.Status.Segments[0]
	if len(seg.Epochs) != cxv1.MaxEpochs || seg.Epochs[cxv1.MaxEpochs-1].Weights[1].Weight != 5 {
		t.Errorf("%d epochs, last %+v", len(seg.Epochs), seg.Epochs[len(seg.Epochs)-1])
	}
	if len(out.Events) != 1 || out.Events[0].Reason != EventEpochsFolded {
		t.Errorf("events %+v", out.Events)
	}
}

func TestSampleRatioMismatchHoldsTheSegment(t *testing.T) {
	segs := []string{"enterprise", "new-customers"}
	s := spec(segs, "one-page")
	s.Steps[0].MinDuration.Duration = 0
	good := all(nonInferior(85.5), segs...)
	st := Decide(Input{Spec: s, Status: &cxv1.CXExperimentStatus{}, Now: t0}).Status
	held := map[string]string{"enterprise": "control 81.2% (expected 95.0%)"}
	out := Decide(Input{Spec: s, Status: &st, Judgements: good, Mismatches: held, Now: t0.Add(time.Hour)})
	if out.Status.CurrentStep != 1 || !strings.Contains(out.WaitingMessage, "segment enterprise is held by a sample-ratio mismatch") {
		t.Errorf("step %d, waiting %q", out.Status.CurrentStep, out.WaitingMessage)
	}
	// Rollbacks still apply while held.
	out = Decide(Input{Spec: s, Status: &st, Judgements: Judgements{"enterprise": {"one-page": inferior}}, Mismatches: held, Now: t0.Add(time.Hour)})
	if len(out.RolledBack) != 1 {
		t.Errorf("rollbacks while held: %+v", out.RolledBack)
	}
	// A manual promote proceeds, with a warning.
	out = Decide(Input{Spec: s, Status: &st, Judgements: good, Mismatches: held, Actions: Actions{Promote: "now"}, Now: t0.Add(time.Hour)})
	if out.Status.Phase != cxv1.PhaseSucceeded || len(out.Events) == 0 || out.Events[0].Reason != EventMismatchIgnored {
		t.Errorf("manual promote: phase %s events %+v", out.Status.Phase, out.Events)
	}
	// Without the mismatch the same evidence advances.
	out = Decide(Input{Spec: s, Status: &st, Judgements: good, Now: t0.Add(time.Hour)})
	if out.Status.CurrentStep != 2 {
		t.Errorf("step %d without a mismatch", out.Status.CurrentStep)
	}
}

func ptrTime(t time.Time) *metav1.Time { m := metav1.NewTime(t); return &m }

func ptrMicro(t time.Time) *metav1.MicroTime { m := metav1.NewMicroTime(t); return &m }
