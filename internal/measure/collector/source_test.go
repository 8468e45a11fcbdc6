package collector

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/measure"
)

var commitAt = time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)

func experiment(run int32) *cxv1.CXExperiment {
	return &cxv1.CXExperiment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout", UID: "uid-1"},
		Spec: cxv1.CXExperimentSpec{
			Variants:     []cxv1.Variant{{Name: "control", Control: true}, {Name: "one-page"}},
			Segments:     []string{"enterprise", "smb"},
			Satisfaction: cxv1.Satisfaction{Metric: cxv1.MetricCSAT},
		},
		Status: cxv1.CXExperimentStatus{Run: run},
	}
}

func tally(run int32, owner string, counts ...cxv1.TallyCount) *cxv1.ResponseTally {
	t := &cxv1.ResponseTally{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout",
			Annotations: map[string]string{annotationLastCommitAt: commitAt.Format(time.RFC3339Nano)}},
		Spec: cxv1.ResponseTallySpec{Experiment: "checkout", Run: run, ScoreMin: 1, Counts: counts},
	}
	if owner != "" {
		t.OwnerReferences = []metav1.OwnerReference{{APIVersion: cxv1.GroupVersion.String(), Kind: "CXExperiment", Name: "checkout", UID: types.UID(owner), Controller: new(true)}}
	}
	return t
}

func query(exp *cxv1.CXExperiment) measure.Query {
	set, err := exp.Spec.Satisfaction.Settings()
	if err != nil {
		panic(err)
	}
	return measure.Query{Experiment: exp, Settings: set, Segments: exp.Spec.SegmentNames(), Variants: []string{"control", "one-page"}}
}

func reader(t *testing.T, objs ...client.Object) client.Reader {
	s := runtime.NewScheme()
	if err := cxv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
}

func TestTallies(t *testing.T) {
	counts := []cxv1.TallyCount{
		{Segment: "enterprise", Variant: "control", Scores: []int64{0, 1, 0, 3, 6}},
		{Segment: "enterprise", Variant: "one-page", Scores: []int64{0, 0, 0, 0, 0}}, // zero: no data
		{Segment: "smb", Variant: "one-page", Scores: []int64{2, 0, 0}},              // short: padded
		{Segment: "consumer", Variant: "control", Scores: []int64{1, 0, 0, 0, 0}},    // not asked for
	}
	allMissing := []string{"enterprise/control", "enterprise/one-page", "smb/control", "smb/one-page"}
	for _, tc := range []struct {
		name    string
		exp     *cxv1.CXExperiment
		objs    []client.Object
		want    measure.Tallies
		missing []string
		last    time.Time
	}{
		{
			name: "current run", exp: experiment(1), objs: []client.Object{tally(1, "uid-1", counts...)},
			want: measure.Tallies{
				"enterprise": {"control": {0, 1, 0, 3, 6}},
				"smb":        {"one-page": {2, 0, 0, 0, 0}},
			},
			missing: []string{"enterprise/one-page", "smb/control"},
			last:    commitAt,
		},
		{name: "no tally yet", exp: experiment(1), want: measure.Tallies{}, missing: allMissing},
		{name: "tally of an earlier run", exp: experiment(2), objs: []client.Object{tally(1, "uid-1", counts...)}, want: measure.Tallies{}, missing: allMissing},
		{name: "tally of a deleted experiment", exp: experiment(1), objs: []client.Object{tally(1, "uid-old", counts...)}, want: measure.Tallies{}, missing: allMissing},
		{name: "tally of another scale", exp: func() *cxv1.CXExperiment {
			e := experiment(1)
			e.Spec.Satisfaction.Metric = cxv1.MetricNPS
			return e
		}(), objs: []client.Object{tally(1, "uid-1", counts...)}, want: measure.Tallies{}, missing: allMissing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &Source{Reader: reader(t, tc.objs...)}
			res, err := src.Tallies(context.Background(), query(tc.exp))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res.Tallies, tc.want) {
				t.Errorf("Tallies = %v, want %v", res.Tallies, tc.want)
			}
			if !reflect.DeepEqual(res.Missing, tc.missing) {
				t.Errorf("Missing = %v, want %v", res.Missing, tc.missing)
			}
			if !res.LastResponseAt.Equal(tc.last) {
				t.Errorf("LastResponseAt = %v, want %v", res.LastResponseAt, tc.last)
			}
		})
	}
}

func TestTalliesWithoutSegmentsAndManagedFieldsTime(t *testing.T) {
	exp := experiment(1)
	exp.Spec.Segments = nil
	tl := tally(1, "uid-1", cxv1.TallyCount{Segment: cxv1.AllSegment, Variant: "one-page", Scores: []int64{0, 0, 0, 1, 1}})
	tl.Annotations = nil
	res, err := (&Source{Reader: reader(t, tl)}).Tallies(context.Background(), query(exp))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Tallies.Get(cxv1.AllSegment, "one-page"); !reflect.DeepEqual(got, []int64{0, 0, 0, 1, 1}) {
		t.Fatalf("all/one-page = %v", got)
	}
	if !reflect.DeepEqual(res.Missing, []string{"all/control"}) {
		t.Fatalf("Missing = %v", res.Missing)
	}
	// Without the annotation the time comes from managedFields.
	at := metav1.NewTime(commitAt)
	tl.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "a", Time: &metav1.Time{Time: commitAt.Add(-time.Hour)}}, {Manager: "b", Time: &at}}
	if got := lastCommit(tl); !got.Equal(commitAt) {
		t.Fatalf("lastCommit from managedFields = %v, want %v", got, commitAt)
	}
}

func TestTalliesReadError(t *testing.T) {
	s := runtime.NewScheme()
	_ = cxv1.AddToScheme(s)
	failing := interceptor.NewClient(fake.NewClientBuilder().WithScheme(s).Build(), interceptor.Funcs{
		Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
			return errors.New("connection refused")
		},
	})
	if _, err := (&Source{Reader: failing}).Tallies(context.Background(), query(experiment(1))); err == nil {
		t.Fatal("a read error was not returned")
	}
}

func TestTalliesByEpoch(t *testing.T) {
	tl := tally(1, "uid-1",
		cxv1.TallyCount{Segment: "enterprise", Variant: "control", Scores: []int64{1, 0, 0, 3, 6},
			// 10 in all, 7 in epochs: 3 were counted before the run had epochs.
			Epochs: []cxv1.EpochCount{{Epoch: 1, Scores: []int64{0, 0, 0, 1, 2}}, {Epoch: 2, Scores: []int64{0, 0, 0, 2, 2}}}},
		cxv1.TallyCount{Segment: "enterprise", Variant: "one-page", Scores: []int64{0, 0, 0, 0, 4},
			Epochs: []cxv1.EpochCount{{Epoch: 2, Scores: []int64{0, 0, 0, 0, 4}}}},
	)
	res, err := (&Source{Reader: reader(t, tl)}).Tallies(context.Background(), query(experiment(1)))
	if err != nil {
		t.Fatal(err)
	}
	want := measure.EpochTallies{"enterprise": {
		0: {"control": {1, 0, 0, 0, 2}},
		1: {"control": {0, 0, 0, 1, 2}},
		2: {"control": {0, 0, 0, 2, 2}, "one-page": {0, 0, 0, 0, 4}},
	}}
	if !reflect.DeepEqual(res.Epochs, want) {
		t.Errorf("Epochs = %v, want %v", res.Epochs, want)
	}
	if got := res.Tallies.Get("enterprise", "control"); !reflect.DeepEqual(got, []int64{1, 0, 0, 3, 6}) {
		t.Errorf("the run's total is %v", got)
	}
}
