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

// keyDigestSize is the length of one digest in spec.recentKeyDigests.
const keyDigestSize = 8

// legacyMaxKeys is the most digests the deprecated spec.recentKeys list
// holds (its CRD's maxItems).
const legacyMaxKeys = 1024

// KeyDigest is what is stored in spec.recentKeyDigests for an
// Idempotency-Key: the first 64 bits of SHA-256 over namespace, experiment,
// run and key, as 8 raw bytes. Scoping by run means a key reused in a later
// run counts again; the raw key is never stored. Two different keys share a
// digest with probability MaxRecentKeys/2^64 per answer (about 6·10^-17),
// and then the later one is answered as a duplicate.
func KeyDigest(namespace, experiment string, run int32, key string) string {
	h := sha256.New()
	for _, part := range []string{namespace, experiment, strconv.Itoa(int(run)), key} {
		h.Write([]byte(part))
		h.Write([]byte{0}) // separator: ("ab","c") and ("a","bc") differ
	}
	return string(h.Sum(nil)[:keyDigestSize])
}

// recentKeys returns the key digests spec holds, oldest first: those of the
// deprecated spec.recentKeys (written by Rapport before
// spec.recentKeyDigests, so older), then the packed ones. A digest in the
// list is in base64url: from older versions, the first 128 bits of the same
// SHA-256, whose first 8 bytes are the KeyDigest of the same key; written
// by list, the 8 bytes alone. One that does not decode is skipped.
func recentKeys(spec *cxv1.ResponseTallySpec) []string {
	keys := make([]string, 0, len(spec.RecentKeys)+len(spec.RecentKeyDigests)/keyDigestSize)
	for _, k := range spec.RecentKeys {
		if raw, err := base64.RawURLEncoding.DecodeString(k); err == nil && len(raw) >= keyDigestSize {
			keys = append(keys, string(raw[:keyDigestSize]))
		}
	}
	for d := spec.RecentKeyDigests; len(d) >= keyDigestSize; d = d[keyDigestSize:] {
		keys = append(keys, string(d[:keyDigestSize]))
	}
	return keys
}

// pack concatenates digests into the value of spec.recentKeyDigests; nil
// when there are none.
func pack(digests []string) []byte {
	if len(digests) == 0 {
		return nil
	}
	packed := make([]byte, 0, len(digests)*keyDigestSize)
	for _, d := range digests {
		packed = append(packed, d...)
	}
	return packed
}

// list is digests as the deprecated spec.recentKeys holds them: base64url,
// for a ResponseTally CRD that predates spec.recentKeyDigests.
func list(digests []string) []string {
	out := make([]string, 0, len(digests))
	for _, d := range digests {
		out = append(out, base64.RawURLEncoding.EncodeToString([]byte(d)))
	}
	return out
}

// holdsKey reports whether t is the tally of exp's current run and holds
// the key digest: a batch with that Idempotency-Key was committed in this
// run.
func holdsKey(t *cxv1.ResponseTally, exp *cxv1.CXExperiment, digest string) bool {
	return metav1.IsControlledBy(t, exp) && t.Spec.Run == exp.Status.Run && slices.Contains(recentKeys(&t.Spec), digest)
}

// batch is one accepted request on its way into a commit.
type batch struct {
	// key is the KeyDigest of the request's Idempotency-Key (8 bytes), ""
	// without one.
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
	// keysInList keeps the key digests in the deprecated spec.recentKeys
	// (at most legacyMaxKeys): the installed ResponseTally CRD predates
	// spec.recentKeyDigests, and the API server would drop them.
	keysInList bool
}

// merge folds batches into spec, in order, and marks each batch duplicate or
// not. It is pure and idempotent per call: the commit calls it again on a
// fresh copy after a write conflict.
//
// A spec of another run, scale or experiment is reset first: counts and keys
// belong to one run. Within a group, the first batch carrying a key counts;
// later ones are duplicates, as are batches whose key the spec holds.
func merge(spec *cxv1.ResponseTallySpec, t target, batches []*batch) {
	if spec.Experiment != t.experiment || spec.Run != t.run || int(spec.ScoreMin) != t.scoreMin {
		*spec = cxv1.ResponseTallySpec{Experiment: t.experiment, Run: t.run, ScoreMin: int32(t.scoreMin)}
	}
	keys := recentKeys(spec)
	seen := make(map[string]bool, len(keys)+len(batches))
	for _, k := range keys {
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
			keys = append(keys, b.key)
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
	// The newest MaxRecentKeys digests, packed; the deprecated list is
	// emptied, its digests moved into the packed value. With a CRD that
	// lacks the packed field, the newest legacyMaxKeys stay in the list.
	if t.keysInList {
		keys = keys[max(0, len(keys)-legacyMaxKeys):]
		spec.RecentKeys, spec.RecentKeyDigests = list(keys), nil
	} else {
		keys = keys[max(0, len(keys)-MaxRecentKeys):]
		spec.RecentKeyDigests, spec.RecentKeys = pack(keys), nil
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
