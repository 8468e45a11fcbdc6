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

// PackedDigestSize is the length of one digest in spec.recentKeyDigests:
// the first bytes of a KeyDigest.
const PackedDigestSize = 8

// legacyMaxKeys is the most digests the deprecated spec.recentKeys list
// holds (its CRD's maxItems).
const legacyMaxKeys = 1024

// KeyDigest identifies an Idempotency-Key in a tally: the first 128 bits of
// SHA-256 over namespace, experiment, run and key, as 16 raw bytes.
// Scoping by run means a key reused in a later run counts again; the raw
// key is never stored. A tally keeps the first PackedDigestSize bytes in
// spec.recentKeyDigests; while the CRD lacks that field, all 16 in the
// deprecated spec.recentKeys in unpadded base64url (22 characters), as
// earlier versions wrote them, so that they recognise these keys too. Keys
// are compared by their first 8 bytes: two different keys match with
// probability MaxRecentKeys/2^64 per answer (about 6·10^-17), and then the
// later one is answered as a duplicate.
func KeyDigest(namespace, experiment string, run int32, key string) string {
	h := sha256.New()
	for _, part := range []string{namespace, experiment, strconv.Itoa(int(run)), key} {
		h.Write([]byte(part))
		h.Write([]byte{0}) // separator: ("ab","c") and ("a","bc") differ
	}
	return string(h.Sum(nil)[:16])
}

// packed is the part of digest d that spec.recentKeyDigests keeps and
// that keys are compared by.
func packed(d string) string { return d[:min(len(d), PackedDigestSize)] }

// recentKeys returns the key digests spec holds, oldest first, as stored:
// those of the deprecated spec.recentKeys (written before
// spec.recentKeyDigests, so older; 16 bytes), then the packed ones (8
// bytes). A list entry that does not decode to at least 8 bytes is
// skipped, as is a packed value's incomplete last digest.
func recentKeys(spec *cxv1.ResponseTallySpec) []string {
	keys := make([]string, 0, len(spec.RecentKeys)+len(spec.RecentKeyDigests)/PackedDigestSize)
	for _, k := range spec.RecentKeys {
		if raw, err := base64.RawURLEncoding.DecodeString(k); err == nil && len(raw) >= PackedDigestSize {
			keys = append(keys, string(raw))
		}
	}
	for d := spec.RecentKeyDigests; len(d) >= PackedDigestSize; d = d[PackedDigestSize:] {
		keys = append(keys, string(d[:PackedDigestSize]))
	}
	return keys
}

// pack concatenates digests into the value of spec.recentKeyDigests; nil
// when there are none.
func pack(digests []string) []byte {
	if len(digests) == 0 {
		return nil
	}
	out := make([]byte, 0, len(digests)*PackedDigestSize)
	for _, d := range digests {
		out = append(out, packed(d)...)
	}
	return out
}

// list is digests as the deprecated spec.recentKeys holds them: base64url,
// for a ResponseTally CRD that predates spec.recentKeyDigests. A digest
// read from a packed value has only its 8 bytes, which earlier versions do
// not recognise.
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
	return metav1.IsControlledBy(t, exp) && t.Spec.Run == exp.Status.Run &&
		slices.ContainsFunc(recentKeys(&t.Spec), func(k string) bool { return packed(k) == packed(digest) })
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
		seen[packed(k)] = true
	}
	index := make(map[[2]string]int, len(spec.Counts))
	for i, c := range spec.Counts {
		index[[2]string{c.Segment, c.Variant}] = i
	}
	for _, b := range batches {
		b.duplicate = b.key != "" && seen[packed(b.key)]
		if b.duplicate {
			continue
		}
		if b.key != "" {
			seen[packed(b.key)] = true
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
