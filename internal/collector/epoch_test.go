package collector

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

// epochsFrom returns epochs that start at t0 plus each offset, each applied
// to the traffic one second after it started.
func epochsFrom(starts ...time.Duration) []cxv1.EpochStatus {
	var out []cxv1.EpochStatus
	for i, d := range starts {
		applied := metav1.NewMicroTime(t0.Add(d + time.Second))
		out = append(out, cxv1.EpochStatus{Epoch: int32(i + 1), StartedAt: metav1.NewMicroTime(t0.Add(d)), AppliedAt: &applied})
	}
	return out
}

func TestEpochAt(t *testing.T) {
	eps := epochsFrom(0, time.Hour, 2*time.Hour) // epochs 1, 2, 3
	// The current epoch's weights are decided but the route has not taken
	// them (the controller stopped between its two writes): unknown.
	pending := epochsFrom(0, time.Hour)
	pending[1].AppliedAt = nil
	now := t0.Add(3 * time.Hour)
	for _, c := range []struct {
		name   string
		epochs []cxv1.EpochStatus
		at     time.Time
		want   int32
	}{
		{"no at: the current epoch", eps, time.Time{}, 3},
		{"inside the first", eps, t0.Add(30 * time.Minute), 1},
		{"at a boundary, before the route took the weights: unknown", eps, t0.Add(time.Hour), 0},
		{"once the route took them: the epoch that starts there", eps, t0.Add(time.Hour + time.Second), 2},
		{"just before a boundary", eps, t0.Add(time.Hour - time.Nanosecond), 1},
		{"inside the last", eps, t0.Add(150 * time.Minute), 3},
		{"before the run: implausible, commit time instead", eps, t0.Add(-time.Second), 3},
		{"slightly ahead of our clock: believed", eps, now.Add(30 * time.Second), 3},
		{"far in the future: implausible", eps, now.Add(time.Hour), 3},
		{"a segment without epochs", nil, t0, 0},
		{"pending/no at", pending, time.Time{}, 0},
		{"pending/inside the pending epoch", pending, t0.Add(90 * time.Minute), 0},
		{"pending/inside the applied one before it", pending, t0.Add(30 * time.Minute), 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := epochAt(c.epochs, c.at, now); got != c.want {
				t.Errorf("epochAt(%v) = %d, want %d", c.at, got, c.want)
			}
		})
	}
}

func TestAssignEpochsKeepsKnownEpochs(t *testing.T) {
	exp := &cxv1.CXExperiment{Status: cxv1.CXExperimentStatus{Segments: []cxv1.SegmentStatus{
		{Name: "smb", Epoch: 2, Epochs: epochsFrom(0, time.Hour)},
		{Name: "legacy"},
	}}}
	b := &batch{responses: []Response{
		{Segment: "smb", Epoch: 1},                        // sent by the client: kept
		{Segment: "smb", At: t0.Add(10 * time.Minute)},    // from at
		{Segment: "smb"},                                  // commit time: current
		{Segment: "legacy", At: t0.Add(10 * time.Minute)}, // no epochs: 0
	}}
	assignEpochs([]*batch{b}, exp, t0.Add(2*time.Hour))
	var got []int32
	for _, r := range b.responses {
		got = append(got, r.Epoch)
	}
	if want := []int32{1, 1, 2, 0}; !reflect.DeepEqual(got, want) {
		t.Errorf("epochs %v, want %v", got, want)
	}
}

func TestParseEpoch(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want int32
		msg  string
	}{
		{"", 0, ""}, {"null", 0, ""}, {"1", 1, ""}, {"3", 3, ""},
		{"4", 4, ""}, // one past the current: the controller may be ahead of our cache
		{"5", 0, "is not an epoch of the segment (1..3)"},
		{"0", 0, "is not an epoch"}, {"-1", 0, "is not an epoch"}, {"1.5", 0, "is not an epoch"}, {`"2"`, 0, "is not an epoch"},
	} {
		got, msg := parseEpoch(json.RawMessage(c.raw), 3)
		if got != c.want || !strings.Contains(msg, c.msg) || (c.msg == "") != (msg == "") {
			t.Errorf("parseEpoch(%s) = %d, %q; want %d, %q", c.raw, got, msg, c.want, c.msg)
		}
	}
}

func TestMergeCountsPerEpoch(t *testing.T) {
	spec := &cxv1.ResponseTallySpec{}
	r := func(epoch int32, score int) Response {
		return Response{Segment: "smb", Variant: "one-page", Score: score, Epoch: epoch}
	}
	merge(spec, csatTarget, []*batch{{responses: []Response{r(2, 5), r(1, 4), r(2, 5), r(0, 1)}}})
	want := []cxv1.TallyCount{{Segment: "smb", Variant: "one-page", Scores: []int64{1, 0, 0, 1, 2},
		Epochs: []cxv1.EpochCount{{Epoch: 1, Scores: []int64{0, 0, 0, 1, 0}}, {Epoch: 2, Scores: []int64{0, 0, 0, 0, 2}}}}}
	if !reflect.DeepEqual(spec.Counts, want) {
		t.Fatalf("counts\n%+v\nwant\n%+v", spec.Counts, want)
	}
	// The response without an epoch (a run that predates epochs) counts in the total only.
	var inEpochs int64
	for _, e := range spec.Counts[0].Epochs {
		for _, x := range e.Scores {
			inEpochs += x
		}
	}
	if spec.Total != 4 || inEpochs != 3 {
		t.Errorf("total %d, in epochs %d", spec.Total, inEpochs)
	}
}

func TestMergeFoldsEpochsBeyondTheLimit(t *testing.T) {
	spec := &cxv1.ResponseTallySpec{}
	var rs []Response
	for e := int32(1); e <= cxv1.MaxEpochs+3; e++ {
		rs = append(rs, Response{Segment: "s", Variant: "v", Score: 5, Epoch: e})
	}
	merge(spec, csatTarget, []*batch{{responses: rs}})
	eps := spec.Counts[0].Epochs
	if len(eps) != cxv1.MaxEpochs || eps[len(eps)-1].Scores[4] != 4 {
		t.Errorf("%d epochs, last %+v; want %d epochs, the last holding 4", len(eps), eps[len(eps)-1], cxv1.MaxEpochs)
	}
}
