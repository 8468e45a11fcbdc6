package collector

import (
	"slices"
	"time"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// atSkew is how far a response's `at` may lie in the future of the
// collector's clock and still be believed (client clocks drift).
const atSkew = time.Minute

// assignEpochs gives every response without an epoch the allocation epoch
// in which its customer was served, from the experiment as the commit reads
// it from the API server (never from a cache that may lag): the epoch whose
// span holds the response's `at` when the client sent a plausible one (not
// before the segment's first epoch, not more than atSkew after now), else
// the segment's current epoch (the commit time stands in for the serving
// time). A segment without epochs (a run that started before Rapport
// recorded them) leaves epoch 0: the response then counts only in the run's
// totals, which are read as one epoch of their own.
//
// So does a response served while the weights were changing: an epoch
// starts when its weights are decided (written to status ahead of the
// route) and its weights are known to be served only from appliedAt, once
// the route took them. In between (normally milliseconds; as long as the
// controller was down or cut off from the API server between the two
// writes) customers were served under the old weights or the new ones, and
// counting them in either epoch would look like a sample-ratio mismatch.
//
// The remaining error is bounded: a response lands in the epoch after the
// one it was served in only when it is answered (or, without `at`,
// committed) after an epoch's appliedAt although served before its
// startedAt, i.e. within the time a customer takes to answer. Clients that
// know the serving epoch (the assignment cookie, the x-rapport-epoch
// header) send it and avoid even that.
func assignEpochs(batches []*batch, exp *cxv1.CXExperiment, now time.Time) {
	for _, b := range batches {
		for i := range b.responses {
			r := &b.responses[i]
			if r.Epoch > 0 {
				continue
			}
			r.Epoch = epochAt(segmentEpochs(exp, r.Segment), r.At, now)
		}
	}
}

func segmentEpochs(exp *cxv1.CXExperiment, segment string) []cxv1.EpochStatus {
	for i := range exp.Status.Segments {
		if exp.Status.Segments[i].Name == segment {
			return exp.Status.Segments[i].Epochs
		}
	}
	return nil
}

// epochAt is the epoch of epochs (oldest first) whose weights served a
// customer at at: the last epoch started at or before at, or the current
// one when at is zero or implausible; 0 without epochs, and 0 when the
// weights were changing then (before the epoch's appliedAt, or while it has
// none).
func epochAt(epochs []cxv1.EpochStatus, at, now time.Time) int32 {
	if len(epochs) == 0 {
		return 0
	}
	if at.IsZero() || at.Before(epochs[0].StartedAt.Time) || at.After(now.Add(atSkew)) {
		if last := epochs[len(epochs)-1]; last.AppliedAt != nil {
			return last.Epoch
		}
		return 0
	}
	// The last epoch that started at or before at.
	i, _ := slices.BinarySearchFunc(epochs, at, func(e cxv1.EpochStatus, t time.Time) int {
		if e.StartedAt.After(t) {
			return 1
		}
		return -1
	})
	e := epochs[max(i-1, 0)]
	if e.AppliedAt == nil || at.Before(e.AppliedAt.Time) {
		return 0
	}
	return e.Epoch
}
