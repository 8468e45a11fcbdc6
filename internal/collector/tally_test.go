package collector

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

func resp(seg, variant string, score int) Response {
	return Response{Segment: seg, Variant: variant, Score: score}
}

var csatTarget = target{experiment: "checkout", run: 1, scoreMin: 1, scores: 5}

// key is the digest of Idempotency-Key k, as the handlers compute it.
func key(k string) string { return KeyDigest("shop", "checkout", 1, k) }

// keyNames names the digests spec holds, oldest first, by the keys of
// names whose digest they are (key); an unknown digest shows as "?".
func keyNames(spec *cxv1.ResponseTallySpec, names ...string) []string {
	byDigest := map[string]string{}
	for _, n := range names {
		byDigest[packed(key(n))] = n
	}
	var out []string
	for _, d := range recentKeys(spec) {
		n, ok := byDigest[packed(d)]
		if !ok {
			n = "?"
		}
		out = append(out, n)
	}
	return out
}

func TestMergeCounts(t *testing.T) {
	spec := &cxv1.ResponseTallySpec{}
	b1 := &batch{responses: []Response{resp("smb", "one-page", 5), resp("enterprise", "control", 1), resp("smb", "one-page", 5)}}
	b2 := &batch{responses: []Response{resp("enterprise", "control", 3)}}
	merge(spec, csatTarget, []*batch{b1, b2})
	want := cxv1.ResponseTallySpec{
		Experiment: "checkout", Run: 1, ScoreMin: 1, Total: 4,
		Counts: []cxv1.TallyCount{ // sorted by segment, then variant
			{Segment: "enterprise", Variant: "control", Scores: []int64{1, 0, 1, 0, 0}},
			{Segment: "smb", Variant: "one-page", Scores: []int64{0, 0, 0, 0, 2}},
		},
	}
	if !reflect.DeepEqual(*spec, want) {
		t.Fatalf("merge =\n%+v\nwant\n%+v", *spec, want)
	}
	if b1.duplicate || b2.duplicate {
		t.Fatal("batches without keys are never duplicates")
	}
	// A second merge adds to the existing counts.
	merge(spec, csatTarget, []*batch{{responses: []Response{resp("smb", "one-page", 1)}}})
	if spec.Total != 5 || !reflect.DeepEqual(spec.Counts[1].Scores, []int64{1, 0, 0, 0, 2}) {
		t.Fatalf("second merge: total %d, counts %+v", spec.Total, spec.Counts)
	}
}

func TestMergeNewRunResets(t *testing.T) {
	spec := &cxv1.ResponseTallySpec{
		Experiment: "checkout", Run: 1, ScoreMin: 1, Total: 7,
		Counts:           []cxv1.TallyCount{{Segment: "all", Variant: "control", Scores: []int64{7, 0, 0, 0, 0}}},
		RecentKeyDigests: pack([]string{key("k-old")}),
	}
	run2 := csatTarget
	run2.run = 2
	b := &batch{key: key("k-old"), responses: []Response{resp("all", "one-page", 4)}}
	merge(spec, run2, []*batch{b})
	if b.duplicate {
		t.Fatal("a key of the previous run must not make a batch of the new run a duplicate")
	}
	want := cxv1.ResponseTallySpec{
		Experiment: "checkout", Run: 2, ScoreMin: 1, Total: 1,
		Counts:           []cxv1.TallyCount{{Segment: "all", Variant: "one-page", Scores: []int64{0, 0, 0, 1, 0}}},
		RecentKeyDigests: pack([]string{key("k-old")}),
	}
	if !reflect.DeepEqual(*spec, want) {
		t.Fatalf("after new run =\n%+v\nwant\n%+v", *spec, want)
	}
}

func TestMergeScaleChanges(t *testing.T) {
	// Another metric (scoreMin differs): counts are not comparable, reset.
	spec := &cxv1.ResponseTallySpec{Experiment: "checkout", Run: 1, ScoreMin: 1, Total: 1,
		Counts: []cxv1.TallyCount{{Segment: "all", Variant: "control", Scores: []int64{1, 0, 0, 0, 0}}}}
	nps := target{experiment: "checkout", run: 1, scoreMin: 0, scores: 11}
	merge(spec, nps, []*batch{{responses: []Response{resp("all", "control", 10)}}})
	if spec.Total != 1 || spec.ScoreMin != 0 || len(spec.Counts[0].Scores) != 11 || spec.Counts[0].Scores[10] != 1 {
		t.Fatalf("metric change: %+v", spec)
	}
	// A CSAT scale that grows keeps its counts and gains slots.
	spec = &cxv1.ResponseTallySpec{Experiment: "checkout", Run: 1, ScoreMin: 1, Total: 1,
		Counts: []cxv1.TallyCount{{Segment: "all", Variant: "control", Scores: []int64{0, 0, 0, 0, 1}}}}
	csat7 := target{experiment: "checkout", run: 1, scoreMin: 1, scores: 7}
	merge(spec, csat7, []*batch{{responses: []Response{resp("all", "control", 7)}}})
	if !reflect.DeepEqual(spec.Counts[0].Scores, []int64{0, 0, 0, 0, 1, 0, 1}) || spec.Total != 2 {
		t.Fatalf("scale growth: %+v", spec)
	}
	// A tally of another experiment (a name reused) starts over.
	other := csatTarget
	other.experiment = "search"
	merge(spec, other, []*batch{{responses: []Response{resp("all", "control", 2)}}})
	if spec.Experiment != "search" || spec.Total != 1 {
		t.Fatalf("other experiment: %+v", spec)
	}
}

func TestMergeIdempotency(t *testing.T) {
	spec := &cxv1.ResponseTallySpec{}
	one := []Response{resp("all", "control", 5)}
	a1 := &batch{key: key("a"), responses: one}
	a2 := &batch{key: key("a"), responses: one} // same key in the same group
	b := &batch{key: key("b"), responses: one}
	n := &batch{responses: one} // no key: always counted
	merge(spec, csatTarget, []*batch{a1, a2, b, n})
	if a1.duplicate || !a2.duplicate || b.duplicate || n.duplicate {
		t.Fatalf("duplicates = %v %v %v %v, want false true false false", a1.duplicate, a2.duplicate, b.duplicate, n.duplicate)
	}
	if got := keyNames(spec, "a", "b"); spec.Total != 3 || !reflect.DeepEqual(got, []string{"a", "b"}) || len(spec.RecentKeyDigests) != 16 {
		t.Fatalf("total %d keys %v (%d bytes), want 3 [a b] (16 bytes)", spec.Total, got, len(spec.RecentKeyDigests))
	}
	// A retry in a later group is a duplicate.
	retry := &batch{key: key("b"), responses: one}
	merge(spec, csatTarget, []*batch{retry})
	if !retry.duplicate || spec.Total != 3 {
		t.Fatalf("retry: duplicate %v total %d", retry.duplicate, spec.Total)
	}
	// merge sets the flag on every call: a batch re-merged after a write
	// conflict on a fresh copy is judged again.
	retry.duplicate = true
	merge(&cxv1.ResponseTallySpec{}, csatTarget, []*batch{retry})
	if retry.duplicate {
		t.Fatal("re-merge into a tally without the key must clear duplicate")
	}
}

func TestMergeKeyRing(t *testing.T) {
	spec := &cxv1.ResponseTallySpec{}
	one := []Response{resp("all", "control", 5)}
	var batches []*batch
	var names []string
	for i := range MaxRecentKeys + 10 {
		names = append(names, fmt.Sprintf("k%d", i))
		batches = append(batches, &batch{key: key(names[i]), responses: one})
	}
	merge(spec, csatTarget, batches[:20])
	merge(spec, csatTarget, batches[20:])
	got := keyNames(spec, names...)
	if len(got) != MaxRecentKeys || len(spec.RecentKeyDigests) != MaxRecentKeys*PackedDigestSize {
		t.Fatalf("ring holds %d keys (%d bytes), want %d", len(got), len(spec.RecentKeyDigests), MaxRecentKeys)
	}
	if got[0] != "k10" || got[MaxRecentKeys-1] != fmt.Sprintf("k%d", MaxRecentKeys+9) {
		t.Fatalf("ring = [%s .. %s], want the newest keys in commit order", got[0], got[len(got)-1])
	}
	// k10 is still remembered; k9 had MaxRecentKeys newer keyed batches and is forgotten.
	kept := &batch{key: key("k10"), responses: one}
	forgotten := &batch{key: key("k9"), responses: one}
	merge(spec, csatTarget, []*batch{kept, forgotten})
	if !kept.duplicate || forgotten.duplicate {
		t.Fatalf("kept duplicate %v (want true), forgotten duplicate %v (want false)", kept.duplicate, forgotten.duplicate)
	}
	if spec.Total != int64(MaxRecentKeys+10+1) {
		t.Fatalf("total %d", spec.Total)
	}
}

// legacyDigest is what Rapport stored in spec.recentKeys before
// spec.recentKeyDigests: the first 128 bits of the same SHA-256, unpadded
// base64url.
func legacyDigest(k string) string {
	h := sha256.New()
	for _, part := range []string{"shop", "checkout", "1", k} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16])
}

// A tally written before spec.recentKeyDigests keeps recognising its keys:
// the old list is read, and the next write moves its digests, older than
// any packed one, into the packed value and empties the list.
func TestMergeMovesLegacyKeys(t *testing.T) {
	spec := &cxv1.ResponseTallySpec{
		Experiment: "checkout", Run: 1, ScoreMin: 1, Total: 3,
		Counts:           []cxv1.TallyCount{{Segment: "all", Variant: "control", Scores: []int64{0, 0, 0, 0, 3}}},
		RecentKeys:       []string{legacyDigest("old-1"), "not base64!", legacyDigest("old-2")},
		RecentKeyDigests: pack([]string{key("new-1")}),
	}
	exp := runningExperiment()
	exp.Name, exp.Namespace = "checkout", "shop"
	tally := &cxv1.ResponseTally{Spec: *spec}
	tally.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(exp, cxv1.GroupVersion.WithKind("CXExperiment"))}
	for _, k := range []string{"old-1", "old-2", "new-1"} {
		if !holdsKey(tally, exp, key(k)) {
			t.Errorf("holdsKey(%s) = false on a tally that holds it", k)
		}
	}
	if holdsKey(tally, exp, key("other")) {
		t.Error("holdsKey(other) = true on a tally that does not hold it")
	}

	one := []Response{resp("all", "control", 5)}
	retry := &batch{key: key("old-2"), responses: one}
	fresh := &batch{key: key("new-2"), responses: one}
	merge(spec, csatTarget, []*batch{retry, fresh})
	if !retry.duplicate || fresh.duplicate || spec.Total != 4 {
		t.Fatalf("retry of a legacy key duplicate %v (want true), new key duplicate %v (want false), total %d (want 4)", retry.duplicate, fresh.duplicate, spec.Total)
	}
	if got, want := keyNames(spec, "old-1", "old-2", "new-1", "new-2"), []string{"old-1", "old-2", "new-1", "new-2"}; !reflect.DeepEqual(got, want) || spec.RecentKeys != nil {
		t.Fatalf("after a write: packed keys %v, legacy list %v; want %v and none", got, spec.RecentKeys, want)
	}
}

func TestKeyDigest(t *testing.T) {
	d := KeyDigest("shop", "checkout", 1, "key-1")
	if legacy, _ := base64.RawURLEncoding.DecodeString(legacyDigest("key-1")); string(legacy) != d {
		t.Fatalf("digest %x is not the digest earlier versions stored (%x)", d, legacy)
	}
	if d != KeyDigest("shop", "checkout", 1, "key-1") {
		t.Fatal("digest is not deterministic")
	}
	for _, other := range []string{
		KeyDigest("shop", "checkout", 2, "key-1"),
		KeyDigest("shop2", "checkout", 1, "key-1"),
		KeyDigest("shop", "checkout2", 1, "key-1"),
		KeyDigest("shop", "checkout", 1, "key-2"),
		KeyDigest("sho", "pcheckout", 1, "key-1"),
	} {
		if other == d {
			t.Fatalf("digest %q does not depend on every part", d)
		}
	}
}

// A value that does not end on a whole digest (not written by Rapport) is
// read up to its last whole digest.
func TestRecentKeysIgnoresAPartialDigest(t *testing.T) {
	spec := &cxv1.ResponseTallySpec{RecentKeyDigests: append(pack([]string{key("a"), key("b")}), "xyz"...)}
	if got := keyNames(spec, "a", "b"); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("keys %v, want [a b]", got)
	}
}

// With a ResponseTally CRD older than spec.recentKeyDigests (keysInList),
// the digests stay in the list, at most its 1,024, and are recognised.
func TestMergeKeysInList(t *testing.T) {
	spec := &cxv1.ResponseTallySpec{}
	old := csatTarget
	old.keysInList = true
	one := []Response{resp("all", "control", 5)}
	var names []string
	var batches []*batch
	for i := range legacyMaxKeys + 5 {
		names = append(names, fmt.Sprintf("k%d", i))
		batches = append(batches, &batch{key: key(names[i]), responses: one})
	}
	merge(spec, old, batches)
	if got, want := keyNames(spec, names...), names[5:]; spec.RecentKeyDigests != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("list of %d keys, packed %d bytes; want %d keys [k5 .. %s] and none packed", len(got), len(spec.RecentKeyDigests), len(want), want[len(want)-1])
	}
	// Entries as earlier versions wrote them, so that they recognise them.
	if spec.RecentKeys[0] != legacyDigest("k5") {
		t.Fatalf("list entry %q, want %q (the digest earlier versions write)", spec.RecentKeys[0], legacyDigest("k5"))
	}
	retry := &batch{key: key("k5"), responses: one}
	merge(spec, old, []*batch{retry})
	if !retry.duplicate || spec.Total != int64(len(names)) {
		t.Fatalf("retry of a listed key: duplicate %v, total %d; want true, %d", retry.duplicate, spec.Total, len(names))
	}
	// Once the CRD is upgraded (and the manager restarted), the next write
	// packs the listed keys.
	merge(spec, csatTarget, []*batch{{key: key("after"), responses: one}})
	all := append(names[5:], "after")
	want := all[max(0, len(all)-MaxRecentKeys):]
	if got := keyNames(spec, all...); spec.RecentKeys != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("after the upgrade: %d packed keys, list %d; want %d packed, no list", len(got), len(spec.RecentKeys), len(want))
	}
}
