package rollout

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// recordEpochs starts a new allocation epoch in every segment whose weights
// now differ from those of its current epoch (a step, a rollback in the
// segment, a promotion, an edit of the steps), while the run is live. The
// first epoch of a run starts with it; a run that predates epochs gets its
// first at the first decision after the upgrade (its earlier counts read as
// one epoch). Beyond cxv1.MaxEpochs a segment's last epoch takes the new
// weights instead of a new epoch.
func (d *decider) recordEpochs() {
	if d.st.Phase != cxv1.PhaseProgressing && d.st.Phase != cxv1.PhasePaused {
		return
	}
	at := metav1.NewMicroTime(d.now.Time)
	for i := range d.st.Segments {
		seg := &d.st.Segments[i]
		w := segmentWeights(seg)
		n := len(seg.Epochs)
		switch {
		case n > 0 && sameWeights(seg.Epochs[n-1].Weights, w):
			continue
		case n >= cxv1.MaxEpochs:
			seg.Epochs[n-1].Weights = w
			seg.Epochs[n-1].AppliedAt = nil // stamped again once the route carries w
			d.event(true, EventEpochsFolded, "segment %s changed its weights more than %d times in run %d: the change to %s joins epoch %d",
				seg.Name, cxv1.MaxEpochs, d.st.Run, formatEpochWeights(w), seg.Epochs[n-1].Epoch)
			continue
		}
		seg.Epoch = int32(n + 1)
		seg.Epochs = append(seg.Epochs, cxv1.EpochStatus{Epoch: seg.Epoch, StartedAt: at, Weights: w})
	}
}

// segmentWeights lists a segment's weights, the control first (the order of
// status.segments[].variants).
func segmentWeights(seg *cxv1.SegmentStatus) []cxv1.VariantWeight {
	out := make([]cxv1.VariantWeight, len(seg.Variants))
	for i, v := range seg.Variants {
		out[i] = cxv1.VariantWeight{Variant: v.Name, Weight: v.Weight}
	}
	return out
}

func sameWeights(a, b []cxv1.VariantWeight) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func formatEpochWeights(w []cxv1.VariantWeight) string {
	parts := make([]string, len(w))
	for i, x := range w {
		parts[i] = fmt.Sprintf("%s %d%%", x.Variant, x.Weight)
	}
	return strings.Join(parts, ", ")
}
