package collector

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/metrics"
)

// AnnotationLastCommitAt is set on a ResponseTally at every commit to the
// commit time (RFC 3339 with nanoseconds). Source reads it as LastResponseAt.
const AnnotationLastCommitAt = "cx.rapport.dev/last-commit-at"

// ManagedBy is the value of LabelManagedBy on the tallies the collector creates.
const ManagedBy = "rapport"

const (
	// commitTimeout bounds one group's write: waiting for a write slot, the
	// reads, and every retry. A request waits at most for the write in flight
	// and its own, so the server's WriteTimeout must exceed twice this.
	commitTimeout = 15 * time.Second
	// commitAttempts bounds the read-modify-write retries on conflict.
	commitAttempts = 8
)

// committer group-commits batches into ResponseTally objects: at most one
// write in flight per experiment; batches arriving meanwhile wait and go
// into the next write together.
type committer struct {
	client     client.Client
	reader     client.Reader
	clock      clock.PassiveClock
	log        logr.Logger
	slots      chan struct{} // bounds concurrent writes across experiments
	maxPending int           // responses waiting per experiment
	keysInList bool          // Options.KeysInList

	mu     sync.Mutex
	queues map[types.NamespacedName]*queue // only experiments with a write in flight
}

// queue is the commit state of one experiment. It exists only while a write
// is in flight, so its number is bounded by the requests being served.
type queue struct {
	writing bool
	next    *group // batches waiting for the next write; nil when none
	// last is the tally this replica wrote last, so that back-to-back groups
	// do not start from a cache that has not seen that write yet. Only the
	// current leader touches it.
	last *cxv1.ResponseTally
	// contended is set when a write lost to another writer (another
	// replica commits answers of the same experiment). The next writes
	// then take turns with it: each waits, up to turnWait, for the other's
	// next write to reach the cache and starts from it, instead of losing
	// one more conflict. It is cleared when no other write comes.
	contended bool
}

// turnWait bounds how long a write under contention waits for the other
// writer's write: about one of its commits.
const turnWait = 50 * time.Millisecond

// group is the batches committed by one write. Its first batch's request is
// the leader: it waits for ready, writes for everyone, then closes done.
type group struct {
	batches   []*batch
	responses int
	ready     chan struct{}
	done      chan struct{}
}

func newCommitter(c client.Client, r client.Reader, clk clock.PassiveClock, log logr.Logger, maxPending int) *committer {
	return &committer{
		client: c, reader: r, clock: clk, log: log,
		slots: make(chan struct{}, DefaultWriteSlots), maxPending: maxPending,
		queues: map[types.NamespacedName]*queue{},
	}
}

// submit commits b into the tally of experiment nn and returns once the
// write that carries it has succeeded or failed (b.err, b.duplicate). The
// wait is bounded by commitTimeout twice; it does not follow the request's
// context because the leader writes for other requests too (an abandoned
// request is still counted; its client retries with the same key).
func (c *committer) submit(nn types.NamespacedName, b *batch) error {
	c.mu.Lock()
	q := c.queues[nn]
	if q == nil {
		q = &queue{}
		c.queues[nn] = q
	}
	g := q.next
	leader := g == nil
	if leader {
		g = &group{ready: make(chan struct{}), done: make(chan struct{})}
		q.next = g
	} else if g.responses+len(b.responses) > c.maxPending {
		c.mu.Unlock()
		return errorf(http.StatusServiceUnavailable, "experiment %s has %d responses waiting to be committed; retry in a second with the same Idempotency-Key", nn.Name, g.responses)
	}
	g.batches = append(g.batches, b)
	g.responses += len(b.responses)
	if leader && !q.writing {
		q.writing = true
		q.next = nil
		close(g.ready)
	}
	c.mu.Unlock()

	if !leader {
		<-g.done
		return b.err
	}
	<-g.ready
	c.lead(nn, q, g)
	return b.err
}

// lead writes g, acknowledges its batches and hands the queue to the next
// group's leader. The handoff is deferred so that a panic in the write
// cannot leave the experiment's queue waiting for a write that never ends.
func (c *committer) lead(nn types.NamespacedName, q *queue, g *group) {
	defer c.handoff(nn, q, g)
	defer func() {
		if p := recover(); p != nil {
			c.log.Error(fmt.Errorf("%v", p), "tally commit panicked", "namespace", nn.Namespace, "experiment", nn.Name)
			for _, b := range g.batches {
				if b.err == nil {
					b.err = errorf(http.StatusInternalServerError, "internal error while committing to experiment %s; nothing was counted, retry with the same Idempotency-Key", nn.Name)
				}
			}
		}
	}()
	start := c.clock.Now()
	err := c.write(nn, q, g.batches)
	for _, b := range g.batches {
		if b.err == nil && err != nil {
			b.err = err
		}
	}
	if err == nil {
		metrics.CollectorCommitDuration.Observe(c.clock.Since(start).Seconds())
		metrics.CollectorCommitBatches.Observe(float64(len(g.batches)))
		c.count(nn, g.batches)
	}
}

// handoff releases g's waiters and lets the next group's leader write, or
// retires the queue when nothing waits.
func (c *committer) handoff(nn types.NamespacedName, q *queue, g *group) {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(g.done)
	if next := q.next; next != nil {
		q.next = nil
		close(next.ready) // q.writing stays true: next's leader writes now
		return
	}
	q.writing = false
	delete(c.queues, nn)
}

// count adds the committed responses to the Prometheus counter. Labels are
// bounded: the experiment exists and segment, variant and score were
// validated against its spec.
func (c *committer) count(nn types.NamespacedName, batches []*batch) {
	type cell struct {
		variant, segment string
		score            int
	}
	cells := map[cell]int{}
	for _, b := range batches {
		if b.err != nil || b.duplicate {
			continue
		}
		for _, r := range b.responses {
			cells[cell{r.Variant, r.Segment, r.Score}]++
		}
	}
	for k, n := range cells {
		metrics.FeedbackResponses.WithLabelValues(nn.Namespace, nn.Name, k.variant, k.segment, strconv.Itoa(k.score)).Add(float64(n))
	}
}

// write is one read-modify-write of the experiment's tally with optimistic
// concurrency. A nil return means every batch without b.err is durable.
func (c *committer) write(nn types.NamespacedName, q *queue, batches []*batch) error {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	select {
	case c.slots <- struct{}{}:
		defer func() { <-c.slots }()
	case <-ctx.Done():
		return errorf(http.StatusServiceUnavailable, "the collector is busy committing other experiments; retry with the same Idempotency-Key")
	}

	// Responses that came without an epoch get theirs from the experiment
	// each attempt reads (a retry may read a newer one).
	unassigned := withoutEpoch(batches)
	cur, fresh := c.base(ctx, nn, q), false
	for attempt := range commitAttempts {
		if cur == nil {
			cur = &cxv1.ResponseTally{}
			// The cache serves the first read; after a conflict only the
			// API server's copy will do.
			var r client.Reader = c.client
			if fresh {
				r = c.reader
			}
			if err := r.Get(ctx, nn, cur); apierrors.IsNotFound(err) {
				cur = nil
			} else if err != nil {
				return c.unavailable(nn, "reading the tally", err)
			}
		}
		exp, err := c.experiment(ctx, nn, cur)
		if err != nil {
			return err
		}
		set, err := exp.JudgedSettings()
		if err != nil {
			return errorf(http.StatusConflict, "experiment %s cannot take responses: %v", nn.Name, err)
		}
		t := target{experiment: nn.Name, run: exp.Status.Run, scoreMin: set.ScoreMin, scores: set.Scores(), keysInList: c.keysInList}
		// A batch validated before a new run started, or before the scale
		// changed, is refused rather than counted into the wrong run.
		live := batches[:0:0]
		for _, b := range batches {
			if b.err != nil {
				continue // refused by an earlier attempt
			}
			if msg := stale(b, t, set.ScoreMax); msg != "" {
				b.err = errorf(http.StatusConflict, "experiment %s %s while the batch was being committed; nothing was counted, check the experiment and resend", nn.Name, msg)
				continue
			}
			live = append(live, b)
		}
		if len(live) == 0 {
			return nil
		}
		if p := exp.Status.Phase; p != cxv1.PhaseProgressing && p != cxv1.PhasePaused {
			// The request was let in by a cache that had not seen the run end
			// (the status write reaches the informer tens of milliseconds
			// later): nothing more is counted into an ended run.
			return c.refuseEnded(ctx, nn, exp, live)
		}
		for _, r := range unassigned {
			r.Epoch = 0
		}
		assignEpochs(live, exp, c.clock.Now())

		obj := c.prepare(cur, exp)
		merge(&obj.Spec, t, live)
		if cur == nil {
			err = c.client.Create(ctx, obj)
		} else {
			err = c.client.Update(ctx, obj)
		}
		if err == nil {
			q.last = obj
			return nil
		}
		if !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) && !apierrors.IsNotFound(err) {
			return c.unavailable(nn, "writing the tally", err)
		}
		// Another replica (or a stale cache, or the controller raising the
		// tally's fence) got there first: re-read and retry after a short
		// jittered pause so two replicas do not collide in lockstep.
		c.log.V(1).Info("tally write conflict, retrying", "namespace", nn.Namespace, "experiment", nn.Name, "attempt", attempt+1, "error", err.Error())
		metrics.CollectorCommitConflicts.Inc()
		cur, fresh, q.last, q.contended = nil, true, nil, true
		select {
		case <-time.After(time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 5)))):
		case <-ctx.Done():
			return c.unavailable(nn, "writing the tally", ctx.Err())
		}
	}
	return errorf(http.StatusServiceUnavailable, "experiment %s: the tally kept changing during %d attempts; retry with the same Idempotency-Key", nn.Name, commitAttempts)
}

// experiment is the experiment a write counts by: the epoch a response is
// counted in, and whether its run is still current, must follow the last
// status the controller wrote. A cache that lags (for up to a minute while
// an informer re-lists after an API-server outage) would count answers
// served at a new step's weights into the previous epoch, whose expected
// shares they do not have: a false sample-ratio mismatch that holds the
// segment for the rest of the run. So the cache's copy serves only when
// base, the tally the write goes over, carries a fence that copy has
// reached (cxv1.AnnotationExperimentFence: the controller raises it after
// such a status and before it changes traffic, and the write fails if the
// tally changed since base); otherwise the experiment is read from the API
// server.
func (c *committer) experiment(ctx context.Context, nn types.NamespacedName, base *cxv1.ResponseTally) (*cxv1.CXExperiment, error) {
	if base != nil {
		if _, fenced := base.Annotations[cxv1.AnnotationExperimentFence]; fenced {
			cached := &cxv1.CXExperiment{}
			if err := c.client.Get(ctx, nn, cached); err == nil && base.FenceReachedBy(cached) {
				metrics.CollectorCommitExperimentReads.WithLabelValues(metrics.FromCache).Inc()
				return cached, nil
			}
		}
	}
	exp := &cxv1.CXExperiment{}
	if err := c.reader.Get(ctx, nn, exp); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, errorf(http.StatusNotFound, "experiment %s was deleted before the responses were committed", nn.Name)
		}
		return nil, c.unavailable(nn, "reading the experiment", err)
	}
	metrics.CollectorCommitExperimentReads.WithLabelValues(metrics.FromAPIServer).Inc()
	return exp, nil
}

// withoutEpoch lists the responses of batches that carry no epoch.
func withoutEpoch(batches []*batch) []*Response {
	var out []*Response
	for _, b := range batches {
		for i := range b.responses {
			if b.responses[i].Epoch == 0 {
				out = append(out, &b.responses[i])
			}
		}
	}
	return out
}

// base is the tally the next write starts from: this replica's last
// write, or under contention the other writer's newer one.
func (c *committer) base(ctx context.Context, nn types.NamespacedName, q *queue) *cxv1.ResponseTally {
	if !q.contended || q.last == nil {
		return q.last
	}
	cur := c.awaitOtherWrite(ctx, nn, q.last)
	if cur == q.last {
		q.contended = false // the other writer has gone quiet
	}
	return cur
}

// awaitOtherWrite waits, up to turnWait, until the cache holds a version
// of the tally newer than last (another writer's) and returns it, or last.
// The cached object is shared: the caller only reads it (prepare copies).
func (c *committer) awaitOtherWrite(ctx context.Context, nn types.NamespacedName, last *cxv1.ResponseTally) *cxv1.ResponseTally {
	deadline := time.Now().Add(turnWait)
	for {
		cached := &cxv1.ResponseTally{}
		if c.client.Get(ctx, nn, cached, client.UnsafeDisableDeepCopy) == nil && newerThan(cached, last) {
			return cached
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return last
		}
		time.Sleep(time.Millisecond)
	}
}

// newerThan reports whether a is a later version of the tally than b
// (cxv1.CompareResourceVersions); one that is not a number counts as not
// newer. A wrong answer costs a conflict and a retry, never a count: the
// write carries its base's resource version.
func newerThan(a, b *cxv1.ResponseTally) bool {
	c, ok := cxv1.CompareResourceVersions(a.ResourceVersion, b.ResourceVersion)
	return ok && c > 0
}

// refuseEnded answers the batches of an experiment that is no longer
// Progressing or Paused: a batch whose key the run's tally holds was
// committed before the end (its client retries a lost acknowledgement) and
// is a duplicate, as committedBeforeEnd answers it; every other batch is
// refused with 409 and nothing is written.
func (c *committer) refuseEnded(ctx context.Context, nn types.NamespacedName, exp *cxv1.CXExperiment, batches []*batch) error {
	cur := &cxv1.ResponseTally{}
	if err := c.reader.Get(ctx, nn, cur); apierrors.IsNotFound(err) {
		cur = &cxv1.ResponseTally{} // no tally: nothing was committed
	} else if err != nil {
		return c.unavailable(nn, "reading the tally", err)
	}
	for _, b := range batches {
		if b.key != "" && holdsKey(cur, exp, b.key) {
			b.duplicate = true
			continue
		}
		b.err = errorf(http.StatusConflict, "experiment %s is %s; responses are accepted while it is Progressing or Paused; nothing was counted", nn.Name, exp.Status.Phase)
	}
	return nil
}

// stale says why a batch no longer fits the experiment, or "".
func stale(b *batch, t target, scoreMax int) string {
	if b.run != t.run {
		return fmt.Sprintf("moved from run %d to run %d", b.run, t.run)
	}
	for _, r := range b.responses {
		if r.Score < t.scoreMin || r.Score > scoreMax {
			return fmt.Sprintf("changed its scale to %d..%d", t.scoreMin, scoreMax)
		}
	}
	return ""
}

// prepare returns the object to write: a copy of cur, or a new tally when
// cur is nil, owned by exp. A tally left by a deleted experiment of the same
// name (another UID) starts over.
func (c *committer) prepare(cur *cxv1.ResponseTally, exp *cxv1.CXExperiment) *cxv1.ResponseTally {
	var obj *cxv1.ResponseTally
	if cur == nil {
		obj = &cxv1.ResponseTally{ObjectMeta: metav1.ObjectMeta{Namespace: exp.Namespace, Name: exp.Name}}
	} else {
		obj = cur.DeepCopy()
	}
	if owner := metav1.GetControllerOf(obj); owner == nil || owner.UID != exp.UID {
		obj.Spec = cxv1.ResponseTallySpec{}
		obj.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(exp, cxv1.GroupVersion.WithKind("CXExperiment"))}
	}
	if obj.Labels == nil {
		obj.Labels = map[string]string{}
	}
	obj.Labels[cxv1.LabelExperiment] = exp.Name
	obj.Labels[cxv1.LabelManagedBy] = ManagedBy
	if obj.Annotations == nil {
		obj.Annotations = map[string]string{}
	}
	obj.Annotations[AnnotationLastCommitAt] = c.clock.Now().UTC().Format(time.RFC3339Nano)
	return obj
}

func (c *committer) unavailable(nn types.NamespacedName, what string, err error) *Error {
	c.log.Error(err, "tally commit failed", "namespace", nn.Namespace, "experiment", nn.Name, "step", what)
	return errorf(http.StatusServiceUnavailable, "could not commit the responses of experiment %s to the Kubernetes API (%s failed); nothing was counted, retry with the same Idempotency-Key", nn.Name, what)
}
