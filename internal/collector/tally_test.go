package collector

import (
	"fmt"
	"reflect"
	"testing"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

func resp(seg, variant string, score int) Response {
	return Response{Segment: seg, Variant: variant, Score: score}
}

var csatTarget = target{experiment: "checkout", run: 1, scoreMin: 1, scores: 5}

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
		Counts:     []cxv1.TallyCount{{Segment: "all", Variant: "control", Scores: []int64{7, 0, 0, 0, 0}}},
		RecentKeys: []string{"k-old"},
	}
	run2 := csatTarget
	run2.run = 2
	b := &batch{key: "k-old", responses: []Response{resp("all", "one-page", 4)}}
	merge(spec, run2, []*batch{b})
	if b.duplicate {
		t.Fatal("a key of the previous run must not make a batch of the new run a duplicate")
	}
	want := cxv1.ResponseTallySpec{
		Experiment: "checkout", Run: 2, ScoreMin: 1, Total: 1,
		Counts:     []cxv1.TallyCount{{Segment: "all", Variant: "one-page", Scores: []int64{0, 0, 0, 1, 0}}},
		RecentKeys: []string{"k-old"},
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
	a1 := &batch{key: "a", responses: one}
	a2 := &batch{key: "a", responses: one} // same key in the same group
	b := &batch{key: "b", responses: one}
	n := &batch{responses: one} // no key: always counted
	merge(spec, csatTarget, []*batch{a1, a2, b, n})
	if a1.duplicate || !a2.duplicate || b.duplicate || n.duplicate {
		t.Fatalf("duplicates = %v %v %v %v, want false true false false", a1.duplicate, a2.duplicate, b.duplicate, n.duplicate)
	}
	if spec.Total != 3 || !reflect.DeepEqual(spec.RecentKeys, []string{"a", "b"}) {
		t.Fatalf("total %d keys %v, want 3 [a b]", spec.Total, spec.RecentKeys)
	}
	// A retry in a later group is a duplicate.
	retry := &batch{key: "b", responses: one}
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
	for i := range MaxRecentKeys + 10 {
		batches = append(batches, &batch{key: fmt.Sprintf("k%d", i), responses: one})
	}
	merge(spec, csatTarget, batches[:20])
	merge(spec, csatTarget, batches[20:])
	if len(spec.RecentKeys) != MaxRecentKeys {
		t.Fatalf("ring holds %d keys, want %d", len(spec.RecentKeys), MaxRecentKeys)
	}
	if spec.RecentKeys[0] != "k10" || spec.RecentKeys[MaxRecentKeys-1] != fmt.Sprintf("k%d", MaxRecentKeys+9) {
		t.Fatalf("ring = [%s .. %s], want the newest keys in commit order", spec.RecentKeys[0], spec.RecentKeys[len(spec.RecentKeys)-1])
	}
	// k10 is still remembered; k9 had 1024 newer keyed batches and is forgotten.
	kept := &batch{key: "k10", responses: one}
	forgotten := &batch{key: "k9", responses: one}
	merge(spec, csatTarget, []*batch{kept, forgotten})
	if !kept.duplicate || forgotten.duplicate {
		t.Fatalf("kept duplicate %v (want true), forgotten duplicate %v (want false)", kept.duplicate, forgotten.duplicate)
	}
	if spec.Total != int64(MaxRecentKeys+10+1) {
		t.Fatalf("total %d", spec.Total)
	}
}

func TestKeyDigest(t *testing.T) {
	d := KeyDigest("shop", "checkout", 1, "key-1")
	if len(d) != 22 {
		t.Fatalf("digest %q has %d characters, want 22", d, len(d))
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
