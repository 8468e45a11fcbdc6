package collector

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// MaxRecentKeys is how many idempotency-key digests a ResponseTally keeps. A
// retried batch is recognised while fewer than MaxRecentKeys newer keyed
// batches have been committed for the same run.
const MaxRecentKeys = 1024

// KeyDigest is what is stored in spec.recentKeys for an Idempotency-Key: the
// first 128 bits of SHA-256 over namespace, experiment, run and key, in
// unpadded base64url (22 characters). Scoping by run means a key reused in a
// later run counts again; the raw key is never stored.
func KeyDigest(namespace, experiment string, run int32, key string) string {
	h := sha256.New()
	for _, part := range []string{namespace, experiment, strconv.Itoa(int(run)), key} {
		h.Write([]byte(part))
		h.Write([]byte{0}) // separator: ("ab","c") and ("a","bc") differ
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16])
}

// holdsKey reports whether t is the tally of exp's current run and holds
// the key digest: a batch with that Idempotency-Key was committed in this
// run.
func holdsKey(t *cxv1.ResponseTally, exp *cxv1.CXExperiment, digest string) bool {
	return metav1.IsControlledBy(t, exp) && t.Spec.Run == exp.Status.Run && slices.Contains(t.Spec.RecentKeys, digest)
}

// batch is one accepted request on its way into a commit.
type batch struct {
	// key is the KeyDigest of the request's Idempotency-Key, "" without one.
	key string
	// run is the experiment run the batch was validated against.
	run       int32
	responses []Response

	// Set by the commit: duplicate when key was already committed (or an
	// earlier batch of the same group carried it); err when not committed.
	duplicate bool
	err       error
}

// target says which run and scale a tally must hold.
type target struct {
	experiment string
	run        int32
	scoreMin   int
	scores     int // number of distinct scores on the scale
}

// merge folds batches into spec, in order, and marks each batch duplicate or
// not. It is pure and idempotent per call: the commit calls it again on a
// fresh copy after a write conflict.
//
// A spec of another run, scale or experiment is reset first: counts and keys
// belong to one run. Within a group, the first batch carrying a key counts;
// later ones are duplicates, as are batches whose key is in recentKeys.
func merge(spec *cxv1.ResponseTallySpec, t target, batches []*batch) {
	if spec.Experiment != t.experiment || spec.Run != t.run || int(spec.ScoreMin) != t.scoreMin {
		*spec = cxv1.ResponseTallySpec{Experiment: t.experiment, Run: t.run, ScoreMin: int32(t.scoreMin)}
	}
	seen := make(map[string]bool, len(spec.RecentKeys)+len(batches))
	for _, k := range spec.RecentKeys {
		seen[k] = true
	}
	index := make(map[[2]string]int, len(spec.Counts))
	for i, c := range spec.Counts {
		index[[2]string{c.Segment, c.Variant}] = i
	}
	for _, b := range batches {
		b.duplicate = b.key != "" && seen[b.key]
		if b.duplicate {
			continue
		}
		if b.key != "" {
			seen[b.key] = true
			spec.RecentKeys = append(spec.RecentKeys, b.key)
		}
		for _, r := range b.responses {
			k := [2]string{r.Segment, r.Variant}
			i, ok := index[k]
			if !ok {
				i = len(spec.Counts)
				index[k] = i
				spec.Counts = append(spec.Counts, cxv1.TallyCount{Segment: r.Segment, Variant: r.Variant})
			}
			c := &spec.Counts[i]
			pos := r.Score - t.scoreMin
			if n := max(t.scores, pos+1); len(c.Scores) < n {
				// A scale that grew within a run (scaleMax raised) keeps the
				// old counts and gains zeroed slots.
				c.Scores = append(c.Scores, make([]int64, n-len(c.Scores))...)
			}
			c.Scores[pos]++
			spec.Total++
			if r.Epoch > 0 {
				addToEpoch(c, r.Epoch, pos, t.scores)
			}
		}
	}
	if n := len(spec.RecentKeys); n > MaxRecentKeys {
		// Copy so the dropped prefix is not kept alive by the slice.
		spec.RecentKeys = slices.Clone(spec.RecentKeys[n-MaxRecentKeys:])
	}
	// A stable order keeps the object diff-friendly and independent of the
	// order in which responses first arrived.
	slices.SortFunc(spec.Counts, func(a, b cxv1.TallyCount) int {
		return cmp.Or(cmp.Compare(a.Segment, b.Segment), cmp.Compare(a.Variant, b.Variant))
	})
}

// addToEpoch counts one response with score index pos in c's epoch, keeping
// c.Epochs sorted. Beyond cxv1.MaxEpochs epochs (the controller stops
// starting new ones there) a new epoch folds into the last.
func addToEpoch(c *cxv1.TallyCount, epoch int32, pos, scores int) {
	i, found := slices.BinarySearchFunc(c.Epochs, epoch, func(e cxv1.EpochCount, n int32) int { return cmp.Compare(e.Epoch, n) })
	if !found {
		if len(c.Epochs) >= cxv1.MaxEpochs {
			i = len(c.Epochs) - 1
		} else {
			c.Epochs = slices.Insert(c.Epochs, i, cxv1.EpochCount{Epoch: epoch})
		}
	}
	e := &c.Epochs[i]
	if n := max(scores, pos+1); len(e.Scores) < n {
		e.Scores = append(e.Scores, make([]int64, n-len(e.Scores))...)
	}
	e.Scores[pos]++
}
