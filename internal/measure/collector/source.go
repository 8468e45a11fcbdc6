package collector

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/measure"
)

// annotationLastCommitAt is internal/collector.AnnotationLastCommitAt; it is
// repeated rather than imported so this reader does not link the HTTP
// server (a test there checks both agree).
const annotationLastCommitAt = "cx.rapport.dev/last-commit-at"

// Source reads the ResponseTally of an experiment.
type Source struct {
	// Reader reads ResponseTallies, usually the manager's cached client.
	Reader client.Reader
}

var _ measure.Source = (*Source)(nil)

// Tallies returns the counts of q's segments and variants for the
// experiment's current run. Pairs without responses are listed in Missing.
func (s *Source) Tallies(ctx context.Context, q measure.Query) (measure.Result, error) {
	exp := q.Experiment
	res := measure.Result{Tallies: measure.Tallies{}, Epochs: measure.EpochTallies{}}
	t := &cxv1.ResponseTally{}
	err := s.Reader.Get(ctx, client.ObjectKeyFromObject(exp), t)
	switch {
	case apierrors.IsNotFound(err):
		t = nil // no response committed yet
	case err != nil:
		return res, fmt.Errorf("reading ResponseTally %s/%s: %w", exp.Namespace, exp.Name, err)
	case !current(t, exp, q.Settings):
		t = nil
	}
	counts := map[[2]string]*cxv1.TallyCount{}
	if t != nil {
		for i := range t.Spec.Counts {
			c := &t.Spec.Counts[i]
			counts[[2]string{c.Segment, c.Variant}] = c
		}
		res.LastResponseAt = lastCommit(t)
	}
	size := q.Settings.Scores()
	for _, seg := range q.Segments {
		for _, v := range q.Variants {
			c := counts[[2]string{seg, v}]
			if c == nil {
				res.Missing = append(res.Missing, seg+"/"+v)
				continue
			}
			scores, n := fit(c.Scores, size)
			if n == 0 {
				res.Missing = append(res.Missing, seg+"/"+v)
				continue
			}
			res.Tallies.Set(seg, v, scores)
			splitEpochs(res.Epochs, seg, v, c, scores, size)
		}
	}
	return res, nil
}

// splitEpochs adds one pair's counts to out by epoch. Counts of the total
// that no epoch holds were recorded before the run had epochs: they go to
// epoch 0.
func splitEpochs(out measure.EpochTallies, seg, variant string, c *cxv1.TallyCount, total []int64, size int) {
	rest := append([]int64(nil), total...)
	for _, ep := range c.Epochs {
		scores, n := fit(ep.Scores, size)
		if n == 0 {
			continue
		}
		out.Add(seg, ep.Epoch, variant, scores)
		for i, x := range scores {
			rest[i] -= x
		}
	}
	for _, x := range rest {
		if x > 0 {
			for i := range rest {
				rest[i] = max(rest[i], 0)
			}
			out.Add(seg, 0, variant, rest)
			return
		}
	}
}

// current says whether t holds counts of exp's current run and scale.
func current(t *cxv1.ResponseTally, exp *cxv1.CXExperiment, set cxv1.SatisfactionSettings) bool {
	if t.Spec.Run != exp.Status.Run || int(t.Spec.ScoreMin) != set.ScoreMin {
		return false
	}
	// A tally left by a deleted experiment of the same name has another owner.
	owner := metav1.GetControllerOf(t)
	return owner == nil || exp.UID == "" || owner.UID == exp.UID
}

// fit copies scores into a slice of the scale's size (the scale may have
// grown within a run) and returns it with its total; counts beyond the
// scale, left by a scale that shrank, are dropped since they cannot be
// judged on the current scale.
func fit(scores []int64, size int) ([]int64, int64) {
	out := make([]int64, size)
	copy(out, scores)
	var n int64
	for _, c := range out {
		n += c
	}
	return out, n
}

// lastCommit is the collector's commit stamp, or the newest managedFields
// time when the annotation is missing (a tally written by another tool).
func lastCommit(t *cxv1.ResponseTally) time.Time {
	if v, ok := t.Annotations[annotationLastCommitAt]; ok {
		if at, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return at
		}
	}
	var last time.Time
	for _, f := range t.ManagedFields {
		if f.Time != nil && f.Time.After(last) {
			last = f.Time.Time
		}
	}
	return last
}
