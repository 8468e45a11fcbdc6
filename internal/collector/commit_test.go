package collector

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

func testScheme(t testing.TB) *runtime.Scheme {
	s := runtime.NewScheme()
	if err := cxv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

var testNow = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// eventually polls cond until it holds or the deadline passes; tests never
// sleep to synchronise.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// gatedClient is a fake API whose first tally write blocks until the gate
// is opened, so the test can make requests pile up behind a write in flight.
type gatedClient struct {
	client.WithWatch
	gate   chan struct{}
	writes atomic.Int32
}

func newGatedClient(t *testing.T, objs ...client.Object) *gatedClient {
	g := &gatedClient{gate: make(chan struct{})}
	wait := func(obj client.Object) {
		if _, ok := obj.(*cxv1.ResponseTally); ok && g.writes.Add(1) == 1 {
			<-g.gate
		}
	}
	g.WithWatch = fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(objs...).
		WithInterceptorFuncs(interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				wait(obj)
				return c.Create(ctx, obj, opts...)
			},
			Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
				wait(obj)
				return c.Update(ctx, obj, opts...)
			},
		}).Build()
	return g
}

func (c *committer) pending(nn types.NamespacedName) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if q := c.queues[nn]; q != nil && q.next != nil {
		return len(q.next.batches)
	}
	return 0
}

func runningExperiment() *cxv1.CXExperiment {
	exp := testExperiment(cxv1.MetricCSAT)
	exp.UID = "uid-1"
	return exp
}

func TestGroupCommit(t *testing.T) {
	exp := runningExperiment()
	nn := client.ObjectKeyFromObject(exp)
	c := newGatedClient(t, exp)
	cm := newCommitter(c, c, clocktesting.NewFakePassiveClock(testNow), logr.Discard(), 10000)
	one := []Response{resp("all", "control", 5)}

	// The leader's write blocks at the gate.
	leader := &batch{run: 1, key: key("lead"), responses: one}
	var wg sync.WaitGroup
	wg.Go(func() { _ = cm.submit(nn, leader) })
	eventually(t, "the first write to start", func() bool { return c.writes.Load() == 1 })

	// Twenty requests arrive meanwhile; two share a key.
	var followers []*batch
	for i := range 20 {
		b := &batch{run: 1, responses: one}
		if i == 3 || i == 7 {
			b.key = "same"
		}
		followers = append(followers, b)
	}
	for _, b := range followers {
		wg.Go(func() { _ = cm.submit(nn, b) })
	}
	eventually(t, "twenty requests queued for the next write", func() bool { return cm.pending(nn) == 20 })
	if c.writes.Load() != 1 {
		t.Fatalf("%d writes started while one was in flight, want 1", c.writes.Load())
	}
	close(c.gate)
	wg.Wait()

	if got := c.writes.Load(); got != 2 {
		t.Fatalf("%d tally writes for 21 requests, want 2 (one per group)", got)
	}
	dups := 0
	for _, b := range append(followers, leader) {
		if b.err != nil {
			t.Fatalf("batch error: %v", b.err)
		}
		if b.duplicate {
			dups++
		}
	}
	if dups != 1 {
		t.Fatalf("%d duplicates, want 1 (two requests with one key in a group count once)", dups)
	}
	tally := &cxv1.ResponseTally{}
	if err := c.Get(context.Background(), nn, tally); err != nil {
		t.Fatal(err)
	}
	if tally.Spec.Total != 20 || tally.Spec.Counts[0].Scores[4] != 20 {
		t.Fatalf("tally total %d counts %+v, want 20", tally.Spec.Total, tally.Spec.Counts)
	}
	if owner := metav1.GetControllerOf(tally); owner == nil || owner.UID != exp.UID || owner.Kind != "CXExperiment" {
		t.Fatalf("owner = %+v", owner)
	}
	if tally.Labels[cxv1.LabelExperiment] != exp.Name || tally.Labels[cxv1.LabelManagedBy] != ManagedBy {
		t.Fatalf("labels = %v", tally.Labels)
	}
	if tally.Annotations[AnnotationLastCommitAt] != testNow.Format(time.RFC3339Nano) {
		t.Fatalf("annotations = %v", tally.Annotations)
	}
	if cm.pending(nn) != 0 || len(cm.queues) != 0 {
		t.Fatalf("queues left behind: %v", cm.queues)
	}
}

func TestCommitPendingCap(t *testing.T) {
	exp := runningExperiment()
	nn := client.ObjectKeyFromObject(exp)
	c := newGatedClient(t, exp)
	cm := newCommitter(c, c, clocktesting.NewFakePassiveClock(testNow), logr.Discard(), 3)
	two := []Response{resp("all", "control", 5), resp("all", "control", 4)}

	var wg sync.WaitGroup
	wg.Go(func() { _ = cm.submit(nn, &batch{run: 1, responses: two}) })
	eventually(t, "the first write to start", func() bool { return c.writes.Load() == 1 })
	queued := &batch{run: 1, responses: two}
	wg.Go(func() { _ = cm.submit(nn, queued) })
	eventually(t, "a request queued", func() bool { return cm.pending(nn) == 1 })

	err := cm.submit(nn, &batch{run: 1, responses: two}) // 2 waiting + 2 > 3
	if e, ok := err.(*Error); !ok || e.Code != http.StatusServiceUnavailable {
		t.Fatalf("over the pending cap: %v, want 503", err)
	}
	close(c.gate)
	wg.Wait()
	if queued.err != nil {
		t.Fatalf("queued batch: %v", queued.err)
	}
}

func TestCommitConflictRereadsUncached(t *testing.T) {
	exp := runningExperiment()
	nn := client.ObjectKeyFromObject(exp)
	base := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(exp).Build()
	var conflicts, uncachedReads, experimentReads atomic.Int32
	c := interceptor.NewClient(base, interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if conflicts.Add(1) <= 2 {
				return apierrors.NewConflict(schema.GroupResource{Resource: "responsetallies"}, obj.GetName(), nil)
			}
			return c.Update(ctx, obj, opts...)
		},
	})
	reader := interceptor.NewClient(base, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*cxv1.CXExperiment); ok {
				experimentReads.Add(1)
			} else {
				uncachedReads.Add(1)
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	cm := newCommitter(c, reader, clocktesting.NewFakePassiveClock(testNow), logr.Discard(), 10000)
	one := []Response{resp("all", "control", 5)}

	if err := cm.submit(nn, &batch{run: 1, responses: one}); err != nil { // creates
		t.Fatal(err)
	}
	b := &batch{run: 1, key: key("k"), responses: one}
	if err := cm.submit(nn, b); err != nil { // two conflicts, then succeeds
		t.Fatal(err)
	}
	if uncachedReads.Load() != 2 {
		t.Fatalf("%d uncached tally reads, want one per conflict (2)", uncachedReads.Load())
	}
	// Without a fence on the tally, every attempt reads the experiment
	// from the API server: a conflict may be the controller raising the
	// fence after a new status.
	if experimentReads.Load() != 4 {
		t.Fatalf("%d uncached experiment reads, want one per attempt (4: the create, then two conflicts and a success)", experimentReads.Load())
	}
	tally := &cxv1.ResponseTally{}
	if err := base.Get(context.Background(), nn, tally); err != nil {
		t.Fatal(err)
	}
	if got := keyNames(&tally.Spec, "k"); tally.Spec.Total != 2 || !reflect.DeepEqual(got, []string{"k"}) {
		t.Fatalf("after retries: total %d keys %v, want 2 and [k]", tally.Spec.Total, got)
	}
}

// TestCommitTakesTurnsUnderContention: once a write has lost a conflict to
// another writer (another replica), the next writes start from the other
// writer's newer tally when the cache holds it, instead of losing again;
// when no other write comes, the queue stops waiting for one.
func TestCommitTakesTurnsUnderContention(t *testing.T) {
	exp := runningExperiment()
	nn := client.ObjectKeyFromObject(exp)
	base := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(exp).Build()
	var updates, conflicts atomic.Int32
	c := interceptor.NewClient(base, interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			updates.Add(1)
			err := c.Update(ctx, obj, opts...)
			if apierrors.IsConflict(err) {
				conflicts.Add(1)
			}
			return err
		},
	})
	one := []Response{resp("all", "control", 5)}
	this := newCommitter(c, c, clocktesting.NewFakePassiveClock(testNow), logr.Discard(), 10000)
	other := newCommitter(c, c, clocktesting.NewFakePassiveClock(testNow), logr.Discard(), 10000)
	tally := func() *cxv1.ResponseTally {
		t.Helper()
		out := &cxv1.ResponseTally{}
		if err := base.Get(context.Background(), nn, out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	write := func(q *queue, name string) {
		t.Helper()
		b := &batch{run: 1, key: key(name), responses: one}
		if err := this.write(nn, q, []*batch{b}); err != nil || b.err != nil || b.duplicate {
			t.Fatalf("%s: write %v, batch %v, duplicate %v", name, err, b.err, b.duplicate)
		}
	}
	if err := this.submit(nn, &batch{run: 1, key: key("this-1"), responses: one}); err != nil {
		t.Fatal(err)
	}
	q := &queue{writing: true, last: tally()}

	// Another replica writes; this queue's last is now stale. Without
	// contention known, the write is based on last and loses a conflict.
	if err := other.submit(nn, &batch{run: 1, key: key("other-1"), responses: one}); err != nil {
		t.Fatal(err)
	}
	updates.Store(0)
	write(q, "this-2")
	if updates.Load() != 2 || conflicts.Load() != 1 || !q.contended {
		t.Fatalf("stale last: %d updates, %d conflicts, contended %v; want 2, 1, true", updates.Load(), conflicts.Load(), q.contended)
	}

	// Under contention, the next write starts from the other's newer write.
	if err := other.submit(nn, &batch{run: 1, key: key("other-2"), responses: one}); err != nil {
		t.Fatal(err)
	}
	updates.Store(0)
	conflicts.Store(0)
	write(q, "this-3")
	if updates.Load() != 1 || conflicts.Load() != 0 || !q.contended {
		t.Fatalf("taking turns: %d updates, %d conflicts, contended %v; want 1, 0, true", updates.Load(), conflicts.Load(), q.contended)
	}

	// No other write comes: after waiting turnWait, the write starts from
	// last, and the queue no longer waits.
	updates.Store(0)
	write(q, "this-4")
	if updates.Load() != 1 || conflicts.Load() != 0 || q.contended {
		t.Fatalf("alone again: %d updates, %d conflicts, contended %v; want 1, 0, false", updates.Load(), conflicts.Load(), q.contended)
	}
	got := tally()
	names := []string{"this-1", "other-1", "this-2", "other-2", "this-3", "this-4"}
	if keys := keyNames(&got.Spec, names...); got.Spec.Total != 6 || !reflect.DeepEqual(keys, names) {
		t.Fatalf("tally total %d keys %v, want 6 and %v", got.Spec.Total, keys, names)
	}
}

func TestNewerThan(t *testing.T) {
	rv := func(v string) *cxv1.ResponseTally {
		return &cxv1.ResponseTally{ObjectMeta: metav1.ObjectMeta{ResourceVersion: v}}
	}
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"12", "9", true}, // numbers, not strings: "12" < "9"
		{"9", "12", false},
		{"9", "9", false},
		{"x", "9", false},
		{"9", "", false},
	} {
		if got := newerThan(rv(tc.a), rv(tc.b)); got != tc.want {
			t.Errorf("newerThan(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestCommitRefusesStaleBatches(t *testing.T) {
	exp := runningExperiment()
	exp.Status.Run = 2
	nn := client.ObjectKeyFromObject(exp)
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(exp).Build()
	cm := newCommitter(c, c, clocktesting.NewFakePassiveClock(testNow), logr.Discard(), 10000)

	oldRun := &batch{run: 1, responses: []Response{resp("all", "control", 5)}}
	if e, ok := cm.submit(nn, oldRun).(*Error); !ok || e.Code != http.StatusConflict {
		t.Fatalf("batch of run 1 on run 2: %v, want 409", e)
	}
	offScale := &batch{run: 2, responses: []Response{resp("all", "control", 9)}}
	if e, ok := cm.submit(nn, offScale).(*Error); !ok || e.Code != http.StatusConflict {
		t.Fatalf("batch off the scale: %v, want 409", e)
	}
	err := c.Get(context.Background(), nn, &cxv1.ResponseTally{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("a tally was written for refused batches: %v", err)
	}
}

func TestCommitResetsTallyOfDeletedExperiment(t *testing.T) {
	exp := runningExperiment()
	old := &cxv1.ResponseTally{
		ObjectMeta: metav1.ObjectMeta{Namespace: exp.Namespace, Name: exp.Name, OwnerReferences: []metav1.OwnerReference{{
			APIVersion: cxv1.GroupVersion.String(), Kind: "CXExperiment", Name: exp.Name, UID: "uid-old", Controller: new(true),
		}}},
		Spec: cxv1.ResponseTallySpec{Experiment: exp.Name, Run: 1, ScoreMin: 1, Total: 50,
			Counts: []cxv1.TallyCount{{Segment: "all", Variant: "control", Scores: []int64{50, 0, 0, 0, 0}}}},
	}
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(exp, old).Build()
	cm := newCommitter(c, c, clocktesting.NewFakePassiveClock(testNow), logr.Discard(), 10000)
	if err := cm.submit(client.ObjectKeyFromObject(exp), &batch{run: 1, responses: []Response{resp("all", "one-page", 2)}}); err != nil {
		t.Fatal(err)
	}
	tally := &cxv1.ResponseTally{}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(exp), tally); err != nil {
		t.Fatal(err)
	}
	if tally.Spec.Total != 1 || len(tally.OwnerReferences) != 1 || tally.OwnerReferences[0].UID != exp.UID {
		t.Fatalf("tally of a deleted experiment was not reset: total %d owners %+v", tally.Spec.Total, tally.OwnerReferences)
	}
}

func TestCommitPanicReleasesTheQueue(t *testing.T) {
	exp := runningExperiment()
	nn := client.ObjectKeyFromObject(exp)
	var calls atomic.Int32
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(exp).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if calls.Add(1) == 1 {
				panic("boom")
			}
			return c.Create(ctx, obj, opts...)
		},
	}).Build()
	cm := newCommitter(c, c, clocktesting.NewFakePassiveClock(testNow), logr.Discard(), 10000)
	one := []Response{resp("all", "control", 5)}
	if e, ok := cm.submit(nn, &batch{run: 1, responses: one}).(*Error); !ok || e.Code != http.StatusInternalServerError {
		t.Fatalf("panicking write: %v, want 500", e)
	}
	if err := cm.submit(nn, &batch{run: 1, responses: one}); err != nil {
		t.Fatalf("the next request after a panic: %v", err)
	}
	if len(cm.queues) != 0 {
		t.Fatal("queue left behind")
	}
}

// A manager's cache can lag behind the API server for up to a minute while
// an informer re-lists after an outage. Answers committed meanwhile must go
// into the epoch the controller last recorded (it records an epoch before
// it changes the weights), not the cached one: counted into the previous
// epoch, answers served at the new weights look like a sample-ratio
// mismatch there and hold the segment for the rest of the run.
func TestCommitCountsIntoTheEpochTheAPIServerHas(t *testing.T) {
	withEpochs := func(starts ...time.Duration) *cxv1.CXExperiment {
		exp := runningExperiment()
		exp.Spec.Segments = []string{"smb"}
		exp.Status.Segments = []cxv1.SegmentStatus{{Name: "smb", Epoch: int32(len(starts)), Epochs: epochsFrom(starts...)}}
		return exp
	}
	cached := withEpochs(0, time.Hour)            // step 2, as the lagging cache has it
	live := withEpochs(0, time.Hour, 2*time.Hour) // step 3, written before the weights changed
	cache := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(cached).Build()
	api := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(live).Build()
	cm := newCommitter(cache, api, clocktesting.NewFakePassiveClock(t0.Add(2*time.Hour+time.Minute)), logr.Discard(), 10000)

	nn := client.ObjectKeyFromObject(live)
	if err := cm.submit(nn, &batch{run: 1, responses: []Response{resp("smb", "control", 5), resp("smb", "one-page", 4)}}); err != nil {
		t.Fatal(err)
	}
	tally := &cxv1.ResponseTally{}
	if err := cache.Get(context.Background(), nn, tally); err != nil {
		t.Fatal(err)
	}
	for _, c := range tally.Spec.Counts {
		if len(c.Epochs) != 1 || c.Epochs[0].Epoch != 3 {
			t.Errorf("%s/%s counted in epochs %+v, want all in epoch 3 (the API server's current epoch; the cache still says 2)", c.Segment, c.Variant, c.Epochs)
		}
	}
}

// A cache that has not seen the run end lets a request in; the commit reads
// the API server's status and counts nothing into the ended run, except that
// a batch committed before the end is answered as a duplicate.
func TestCommitRefusesAnEndedRun(t *testing.T) {
	cached := runningExperiment() // Progressing, as the lagging cache has it
	ended := runningExperiment()
	ended.Status.Phase = cxv1.PhaseRolledBack
	nn := client.ObjectKeyFromObject(ended)
	committed := KeyDigest(nn.Namespace, nn.Name, 1, "sent-before-the-end")
	tally := &cxv1.ResponseTally{
		ObjectMeta: metav1.ObjectMeta{Namespace: nn.Namespace, Name: nn.Name,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ended, cxv1.GroupVersion.WithKind("CXExperiment"))}},
		Spec: cxv1.ResponseTallySpec{Experiment: nn.Name, Run: 1, Total: 1, RecentKeyDigests: []byte(packed(committed)),
			Counts: []cxv1.TallyCount{{Segment: "all", Variant: "control", Scores: []int64{0, 0, 0, 0, 1}}}},
	}
	cache := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(cached, tally.DeepCopy()).Build()
	api := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(ended, tally.DeepCopy()).Build()
	cm := newCommitter(cache, api, clocktesting.NewFakePassiveClock(testNow), logr.Discard(), 10000)

	late := &batch{run: 1, key: KeyDigest(nn.Namespace, nn.Name, 1, "sent-after-the-end"), responses: []Response{resp("all", "one-page", 1)}}
	e, ok := cm.submit(nn, late).(*Error)
	if !ok || e.Code != http.StatusConflict || !strings.Contains(e.Message, "is RolledBack") {
		t.Fatalf("a new batch for a rolled-back run: %v, want 409 naming the phase", e)
	}
	retry := &batch{run: 1, key: committed, responses: []Response{resp("all", "control", 5)}}
	if err := cm.submit(nn, retry); err != nil || !retry.duplicate {
		t.Fatalf("the retry of a batch committed before the end: err %v, duplicate %v; want a duplicate", err, retry.duplicate)
	}
	for name, r := range map[string]client.Reader{"cache": cache, "API server": api} {
		got := &cxv1.ResponseTally{}
		if err := r.Get(context.Background(), nn, got); err != nil {
			t.Fatal(err)
		}
		if got.Spec.Total != 1 || string(got.Spec.RecentKeyDigests) != packed(committed) {
			t.Errorf("tally in the %s changed after the run ended: total %d, key digests %x; want 1 and %x", name, got.Spec.Total, got.Spec.RecentKeyDigests, packed(committed))
		}
	}
}

// countingReader counts the reads of CXExperiments that go through it.
func countingReader(r client.WithWatch, n *atomic.Int32) client.WithWatch {
	return interceptor.NewClient(r, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*cxv1.CXExperiment); ok {
				n.Add(1)
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
}

// epochsCounted returns the epochs each variant's responses were counted in.
func epochsCounted(t *testing.T, r client.Reader, nn types.NamespacedName) map[string][]int32 {
	t.Helper()
	tally := &cxv1.ResponseTally{}
	if err := r.Get(context.Background(), nn, tally); err != nil {
		t.Fatal(err)
	}
	out := map[string][]int32{}
	for _, c := range tally.Spec.Counts {
		for _, e := range c.Epochs {
			out[c.Variant] = append(out[c.Variant], e.Epoch)
		}
	}
	return out
}

// withEpochsAt is a running experiment of segment smb at resourceVersion
// rv whose epochs started at starts after t0.
func withEpochsAt(rv string, starts ...time.Duration) *cxv1.CXExperiment {
	exp := runningExperiment()
	exp.ResourceVersion = rv
	exp.Spec.Segments = []string{"smb"}
	exp.Status.Segments = []cxv1.SegmentStatus{{Name: "smb", Epoch: int32(len(starts)), Epochs: epochsFrom(starts...)}}
	return exp
}

// fencedTally is an empty tally of exp, fenced at fence ("" for none).
func fencedTally(exp *cxv1.CXExperiment, fence string) *cxv1.ResponseTally {
	tally := &cxv1.ResponseTally{
		ObjectMeta: metav1.ObjectMeta{Namespace: exp.Namespace, Name: exp.Name, ResourceVersion: "50",
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(exp, cxv1.GroupVersion.WithKind("CXExperiment"))}},
		Spec: cxv1.ResponseTallySpec{Experiment: exp.Name, Run: 1},
	}
	if fence != "" {
		tally.Annotations = map[string]string{cxv1.AnnotationExperimentFence: fence}
	}
	return tally
}

// The collector counts by its cache's copy of the experiment only behind a
// fence that copy has reached; otherwise by the API server's.
func TestCommitReadsTheCacheOnlyBehindAFence(t *testing.T) {
	cases := []struct {
		name     string
		fence    string
		cachedRV string
		want     int32 // the epoch the answers count in
		apiReads int32
	}{
		// The cache's copy is at the fence: it has every epoch whose
		// weights can be serving; the API server is not asked. (Its copy
		// is newer still, with an epoch the fence does not require: the
		// answers count in the cache's.)
		{name: "copy at the fence", fence: "120", cachedRV: "120", want: 2, apiReads: 0},
		{name: "copy past the fence", fence: "110", cachedRV: "120", want: 2, apiReads: 0},
		// The cache lags behind the fence: the API server's copy counts.
		{name: "copy behind the fence", fence: "130", cachedRV: "120", want: 3, apiReads: 1},
		// No fence (a tally the controller has not fenced yet, or one an
		// older version wrote), or one that is not a version: the API
		// server's copy counts, as before fences.
		{name: "no fence", fence: "", cachedRV: "120", want: 3, apiReads: 1},
		{name: "fence not a version", fence: "v130", cachedRV: "120", want: 3, apiReads: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cached := withEpochsAt(tc.cachedRV, 0, time.Hour)      // step 2
			live := withEpochsAt("130", 0, time.Hour, 2*time.Hour) // step 3
			cache := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(cached, fencedTally(cached, tc.fence)).Build()
			var apiReads atomic.Int32
			api := countingReader(fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(live, fencedTally(live, tc.fence)).Build(), &apiReads)
			cm := newCommitter(cache, api, clocktesting.NewFakePassiveClock(t0.Add(2*time.Hour+time.Minute)), logr.Discard(), 10000)

			nn := client.ObjectKeyFromObject(live)
			if err := cm.submit(nn, &batch{run: 1, responses: []Response{resp("smb", "control", 5), resp("smb", "one-page", 4)}}); err != nil {
				t.Fatal(err)
			}
			want := map[string][]int32{"control": {tc.want}, "one-page": {tc.want}}
			if got := epochsCounted(t, cache, nn); !reflect.DeepEqual(got, want) {
				t.Errorf("counted in epochs %v, want %v", got, want)
			}
			if got := apiReads.Load(); got != tc.apiReads {
				t.Errorf("%d reads of the experiment from the API server, want %d", got, tc.apiReads)
			}
		})
	}
}

// The controller raises the fence after it starts an epoch, and before the
// weights change; meanwhile the collector's cache still holds the previous
// copy of the experiment. The collector's next write starts from its own
// last tally, which is older than the raise: it conflicts, reads the tally
// again, finds the fence past its cached copy and counts by the API
// server's, in the new epoch.
func TestCommitReadsAgainAfterTheFenceRises(t *testing.T) {
	before := withEpochsAt("120", 0, time.Hour)             // step 2, as the cache keeps it
	after := withEpochsAt("130", 0, time.Hour, 2*time.Hour) // step 3, as the controller wrote it
	store := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(after, fencedTally(before, "120")).Build()
	// The cache serves the tally as stored (the fake has no lag) and the
	// experiment as it was before step 3.
	cache := interceptor.NewClient(store, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if exp, ok := obj.(*cxv1.CXExperiment); ok {
				before.DeepCopyInto(exp)
				return nil
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	var apiReads atomic.Int32
	api := countingReader(store, &apiReads)
	cm := newCommitter(cache, api, clocktesting.NewFakePassiveClock(t0.Add(2*time.Hour+time.Minute)), logr.Discard(), 10000)
	nn := client.ObjectKeyFromObject(after)
	ctx := context.Background()

	// A write in step 2, behind a fence the cache has reached.
	q := &queue{} // its last tally carries over to the second write
	if err := writeOne(cm, nn, q, resp("smb", "control", 5)); err != nil {
		t.Fatal(err)
	}
	if apiReads.Load() != 0 || q.last == nil {
		t.Fatalf("first write: %d API reads, last tally kept %v; want 0 and kept", apiReads.Load(), q.last != nil)
	}

	// The controller starts epoch 3 and raises the fence (a merge patch of
	// the annotation: it changes the tally's resourceVersion).
	tally := &cxv1.ResponseTally{}
	if err := store.Get(ctx, nn, tally); err != nil {
		t.Fatal(err)
	}
	raised := tally.DeepCopy()
	raised.Annotations[cxv1.AnnotationExperimentFence] = "130"
	if err := store.Patch(ctx, raised, client.MergeFrom(tally)); err != nil {
		t.Fatal(err)
	}

	if err := writeOne(cm, nn, q, resp("smb", "one-page", 4)); err != nil {
		t.Fatal(err)
	}
	want := map[string][]int32{"control": {2}, "one-page": {3}}
	if got := epochsCounted(t, store, nn); !reflect.DeepEqual(got, want) {
		t.Errorf("counted in epochs %v, want %v (the second answer in the epoch the fence requires)", got, want)
	}
	if apiReads.Load() != 1 {
		t.Errorf("%d reads of the experiment from the API server, want 1 (after the conflict)", apiReads.Load())
	}
	got := &cxv1.ResponseTally{}
	if err := store.Get(ctx, nn, got); err != nil {
		t.Fatal(err)
	}
	if f := got.Annotations[cxv1.AnnotationExperimentFence]; f != "130" {
		t.Errorf("fence after the collector's write = %q, want 130 (kept: only the controller writes it)", f)
	}
}

// writeOne writes one response through q, as a group's leader does.
func writeOne(cm *committer, nn types.NamespacedName, q *queue, r Response) error {
	b := &batch{run: 1, responses: []Response{r}}
	if err := cm.write(nn, q, []*batch{b}); err != nil {
		return err
	}
	return b.err
}
