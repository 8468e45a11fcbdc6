package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/collector"
	"github.com/rapport-dev/rapport/internal/measure"
	collectorsource "github.com/rapport-dev/rapport/internal/measure/collector"
	"github.com/rapport-dev/rapport/internal/metrics"
)

func metricValue(m prometheus.Metric) float64 {
	var out dto.Metric
	Expect(m.Write(&out)).To(Succeed())
	if out.Histogram != nil {
		return float64(out.Histogram.GetSampleCount())
	}
	return out.Counter.GetValue()
}

func requests(code int) float64 {
	return metricValue(metrics.CollectorRequests.WithLabelValues(fmt.Sprint(code)))
}

func commits() float64 { return metricValue(metrics.CollectorCommitBatches.(prometheus.Metric)) }

func conflicts() float64 { return metricValue(metrics.CollectorCommitConflicts) }

// failingWrites makes every ResponseTally write fail, like an API server
// that is down for writes.
type failingWrites struct{ client.Client }

func (f failingWrites) Create(context.Context, client.Object, ...client.CreateOption) error {
	return errors.New("etcdserver: request timed out")
}

func (f failingWrites) Update(context.Context, client.Object, ...client.UpdateOption) error {
	return errors.New("etcdserver: request timed out")
}

// heldWrites holds every ResponseTally write until release is closed, and
// says on started when one begins.
type heldWrites struct {
	client.Client
	started chan<- struct{}
	release <-chan struct{}
}

func (h heldWrites) hold() {
	select {
	case h.started <- struct{}{}:
	default:
	}
	<-h.release
}

func (h heldWrites) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	h.hold()
	return h.Client.Create(ctx, obj, opts...)
}

func (h heldWrites) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	h.hold()
	return h.Client.Update(ctx, obj, opts...)
}

var _ = Describe("Feedback collector", func() {
	var ctx context.Context
	BeforeEach(func() { ctx = context.Background() })

	It("commits a JSON batch into the ResponseTally and counts it in the metrics", func() {
		s := newShop(ctx)
		exp := s.experiment(ctx, "checkout", cxv1.MetricCSAT, cxv1.PhaseProgressing, "enterprise", "smb")
		shared.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		accepted, batches := requests(http.StatusAccepted), commits()

		out := s.post(ctx, shared, "checkout", "", append(same(3, response{Variant: "one-page", Segment: "enterprise", Score: 4, Respondent: "c-123"}),
			response{Variant: "control", Segment: "smb", Score: 1})...)
		Expect(out).To(Equal(reply{Code: http.StatusAccepted, Accepted: 4, JSON: true}))

		t, err := getTally(ctx, s.ns, "checkout")
		Expect(err).NotTo(HaveOccurred())
		Expect(t.Spec.Experiment).To(Equal("checkout"))
		Expect(t.Spec.Run).To(Equal(int32(1)))
		Expect(t.Spec.ScoreMin).To(Equal(int32(1)))
		Expect(t.Spec.Total).To(Equal(int64(4)))
		Expect(t.Spec.Counts).To(Equal([]cxv1.TallyCount{
			{Segment: "enterprise", Variant: "one-page", Scores: []int64{0, 0, 0, 3, 0}},
			{Segment: "smb", Variant: "control", Scores: []int64{1, 0, 0, 0, 0}},
		}))
		Expect(t.Spec.RecentKeyDigests).To(BeEmpty())
		Expect(t.Spec.RecentKeys).To(BeEmpty())
		Expect(t.Labels).To(HaveKeyWithValue(cxv1.LabelExperiment, "checkout"))
		Expect(t.Labels).To(HaveKeyWithValue(cxv1.LabelManagedBy, "rapport"))
		owner := metav1.GetControllerOf(t)
		Expect(owner).NotTo(BeNil())
		Expect(owner.UID).To(Equal(exp.UID))
		Expect(owner.Kind).To(Equal("CXExperiment"))
		at, err := time.Parse(time.RFC3339Nano, t.Annotations[collector.AnnotationLastCommitAt])
		Expect(err).NotTo(HaveOccurred())
		Expect(at).To(BeTemporally("~", time.Now(), time.Minute))
		// Raw answers are never stored.
		Expect(fmt.Sprint(t)).NotTo(ContainSubstring("c-123"))

		Expect(metricValue(metrics.FeedbackResponses.WithLabelValues(s.ns, "checkout", "one-page", "enterprise", "4"))).To(Equal(3.0))
		Expect(metricValue(metrics.FeedbackResponses.WithLabelValues(s.ns, "checkout", "control", "smb", "1"))).To(Equal(1.0))
		Expect(requests(http.StatusAccepted) - accepted).To(Equal(1.0))
		Expect(commits() - batches).To(Equal(1.0))

		By("accepting responses while the experiment is Paused")
		setStatus(ctx, exp, cxv1.PhasePaused, 1)
		shared.waitSeen(ctx, exp, cxv1.PhasePaused, 1)
		Expect(s.post(ctx, shared, "checkout", "", response{Variant: "control", Segment: "smb", Score: 5}).Code).To(Equal(http.StatusAccepted))
		expectTotal(ctx, s.ns, "checkout", 5)
	})

	It("commits an NDJSON batch, normalising the segment of an experiment without segments", func() {
		s := newShop(ctx)
		exp := s.experiment(ctx, "search", cxv1.MetricNPS, cxv1.PhaseProgressing)
		shared.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		body := "{\"variant\":\"control\",\"score\":0}\n\n{\"variant\":\"control\",\"segment\":\"all\",\"score\":10,\"channel\":\"app\"}\n" +
			"{\"variant\":\"one-page\",\"segment\":\"\",\"score\":9,\"at\":\"2026-11-23T10:00:00Z\"}\n"
		out := do(ctx, request{url: shared.url, ns: s.ns, experiment: "search", token: s.token, contentType: "application/x-ndjson", body: body})
		Expect(out).To(Equal(reply{Code: http.StatusAccepted, Accepted: 3, JSON: true}))
		t, err := getTally(ctx, s.ns, "search")
		Expect(err).NotTo(HaveOccurred())
		Expect(t.Spec.ScoreMin).To(Equal(int32(0)))
		Expect(scoresOf(t, "all", "control")).To(Equal([]int64{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}))
		Expect(scoresOf(t, "all", "one-page")).To(Equal([]int64{0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}))
	})

	It("rejects bad requests with their status code and a JSON message naming the fix, counting nothing", func() {
		s := newShop(ctx)
		other := newShop(ctx)
		exp := s.experiment(ctx, "checkout", cxv1.MetricCSAT, cxv1.PhaseProgressing, "enterprise")
		pending := s.experiment(ctx, "pending", cxv1.MetricCSAT, cxv1.PhasePending)
		rolledBack := s.experiment(ctx, "rolled-back", cxv1.MetricCSAT, cxv1.PhaseRolledBack)
		shared.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		shared.waitSeen(ctx, pending, cxv1.PhasePending, 1)
		shared.waitSeen(ctx, rolledBack, cxv1.PhaseRolledBack, 1)
		Eventually(func() error { // the other namespace's token is in the cache too
			return shared.client.Get(ctx, client.ObjectKey{Namespace: other.ns, Name: "feedback-token"}, &corev1.Secret{})
		}).Should(Succeed())

		good := batchBody(response{Variant: "one-page", Segment: "enterprise", Score: 4})
		huge := good[:len(good)-1] + strings.Repeat(" ", 1<<20) + "}"
		base := request{url: shared.url, ns: s.ns, experiment: "checkout", token: s.token, body: good}
		with := func(change func(*request)) request {
			q := base
			change(&q)
			return q
		}
		for _, tc := range []struct {
			name string
			req  request
			code int
			msg  string
		}{
			{"no token", with(func(q *request) { q.noAuth = true }), 401, "missing or malformed Authorization header; send Authorization: Bearer <token>"},
			{"unknown token", with(func(q *request) { q.token = "not-a-token" }), 401, "the token is not valid"},
			{"token of another namespace", with(func(q *request) { q.token = other.token }), 403, "the token belongs to another namespace; use a token of a Secret labelled cx.rapport.dev/feedback-token=true in namespace " + s.ns},
			{"unknown experiment", with(func(q *request) { q.experiment = "nope" }), 404, "experiment nope not found in namespace " + s.ns},
			{"pending experiment", with(func(q *request) { q.experiment = "pending" }), 409, "experiment pending is Pending; responses are accepted while it is Progressing or Paused"},
			{"rolled-back experiment", with(func(q *request) { q.experiment = "rolled-back" }), 409, "experiment rolled-back is RolledBack"},
			{"body too large", with(func(q *request) { q.body = huge }), 413, "at most 1048576 are accepted; split the batch"},
			{"batch too large", with(func(q *request) {
				q.body = batchBody(same(1001, response{Variant: "one-page", Segment: "enterprise", Score: 4})...)
			}), 413, "responses: more than 1000 responses in one batch; split the batch"},
			{"content type", with(func(q *request) { q.contentType = "text/plain" }), 415, `Content-Type "text/plain" is not supported; send application/json or application/x-ndjson`},
			{"score off the scale", with(func(q *request) {
				q.body = batchBody(response{Variant: "one-page", Segment: "enterprise", Score: 7})
			}), 400, "responses[0].score: 7 is outside the CSAT scale 1..5"},
			{"float score", with(func(q *request) { q.body = strings.Replace(good, `"score":4`, `"score":4.5`, 1) }), 400, "responses[0].score: 4.5 is not a whole number"},
			{"missing segment", with(func(q *request) { q.body = batchBody(response{Variant: "one-page", Score: 4}) }), 400, "responses[0].segment is required; one of enterprise"},
			{"bad idempotency key", with(func(q *request) { q.key = strings.Repeat("k", 129) }), 400, "Idempotency-Key must be 1..128 characters"},
		} {
			out := do(ctx, tc.req)
			Expect(out.Code).To(Equal(tc.code), "%s: %+v", tc.name, out)
			Expect(out.JSON).To(BeTrue(), "%s: the error body is JSON", tc.name)
			Expect(out.Error).To(ContainSubstring(tc.msg), tc.name)
			Expect(out.Accepted).To(BeZero())
		}
		for _, name := range []string{"checkout", "pending", "rolled-back"} {
			_, err := getTally(ctx, s.ns, name)
			Expect(apierrors.IsNotFound(err)).To(BeTrue(), "nothing may be committed for %s: %v", name, err)
		}
	})

	It("limits requests per token with 429 and Retry-After", func() {
		s := newShop(ctx)
		exp := s.experiment(ctx, "checkout", cxv1.MetricCSAT, cxv1.PhaseProgressing)
		clk := clocktesting.NewFakePassiveClock(time.Now())
		r, err := startReplica(ctx, collector.Options{RateLimit: 1, RateBurst: 2, Clock: clk})
		Expect(err).NotTo(HaveOccurred())
		defer func() { Expect(r.stop()).To(Succeed()) }()
		r.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)

		one := response{Variant: "control", Score: 5}
		Expect(s.post(ctx, r, "checkout", "", one).Code).To(Equal(http.StatusAccepted))
		Expect(s.post(ctx, r, "checkout", "", one).Code).To(Equal(http.StatusAccepted))
		out := s.post(ctx, r, "checkout", "", one)
		Expect(out.Code).To(Equal(http.StatusTooManyRequests))
		Expect(out.RetryAfter).To(Equal("1"))
		Expect(out.Error).To(ContainSubstring("more than 1 requests per second with this token"))
		clk.SetTime(clk.Now().Add(time.Second))
		Expect(s.post(ctx, r, "checkout", "", one).Code).To(Equal(http.StatusAccepted))
		expectTotal(ctx, s.ns, "checkout", 3)
	})

	It("answers 503 when the commit fails; a retry with the same key elsewhere counts once", func() {
		s := newShop(ctx)
		exp := s.experiment(ctx, "checkout", cxv1.MetricCSAT, cxv1.PhaseProgressing)
		broken, err := startReplica(ctx, collector.Options{RateLimit: -1}, withClient(func(c client.Client) client.Client { return failingWrites{c} }))
		Expect(err).NotTo(HaveOccurred())
		defer func() { Expect(broken.stop()).To(Succeed()) }()
		broken.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		shared.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)

		rs := same(4, response{Variant: "control", Score: 3})
		out := s.post(ctx, broken, "checkout", "batch-1", rs...)
		Expect(out.Code).To(Equal(http.StatusServiceUnavailable))
		Expect(out.RetryAfter).To(Equal("1"))
		Expect(out.Error).To(ContainSubstring("nothing was counted, retry with the same Idempotency-Key"))
		_, err = getTally(ctx, s.ns, "checkout")
		Expect(apierrors.IsNotFound(err)).To(BeTrue())

		Expect(s.post(ctx, shared, "checkout", "batch-1", rs...)).To(Equal(reply{Code: 202, Accepted: 4, JSON: true}))
		Expect(s.post(ctx, shared, "checkout", "batch-1", rs...)).To(Equal(reply{Code: 202, Duplicates: 4, JSON: true}))
		expectTotal(ctx, s.ns, "checkout", 4)
	})

	It("commits a batch whose client hung up; the retry with the same key is a duplicate", func() {
		s := newShop(ctx)
		exp := s.experiment(ctx, "checkout", cxv1.MetricCSAT, cxv1.PhaseProgressing)
		started, release := make(chan struct{}, 1), make(chan struct{})
		held, err := startReplica(ctx, collector.Options{RateLimit: -1}, withClient(func(c client.Client) client.Client {
			return heldWrites{Client: c, started: started, release: release}
		}))
		Expect(err).NotTo(HaveOccurred())
		defer func() { Expect(held.stop()).To(Succeed()) }()
		held.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		shared.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)

		// The client gives up while the collector is writing its batch.
		rs := same(3, response{Variant: "control", Score: 4})
		reqCtx, hangUp := context.WithCancel(ctx)
		req := request{url: held.url, ns: s.ns, experiment: "checkout", token: s.token, key: "hung-up", body: batchBody(rs...)}.build(reqCtx)
		failed := make(chan error, 1)
		go func() {
			res, err := httpClient.Do(req)
			if err == nil {
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				err = fmt.Errorf("answered %d before the client hung up: %s", res.StatusCode, b)
			}
			failed <- err
		}()
		Eventually(started, 30*time.Second).Should(Receive(), func() string {
			select {
			case err := <-failed:
				return err.Error()
			default:
				return "the collector did not start writing the batch"
			}
		})
		hangUp()
		Eventually(failed).Should(Receive(MatchError(context.Canceled)))
		close(release)

		// The write goes on without the client: the batch is counted once,
		// and a retry with the same key learns it was.
		Eventually(func() (int64, error) {
			t, err := getTally(ctx, s.ns, "checkout")
			return t.Spec.Total, err
		}).Should(Equal(int64(3)))
		Expect(s.post(ctx, shared, "checkout", "hung-up", rs...)).To(Equal(reply{Code: 202, Duplicates: 3, JSON: true}))
		expectTotal(ctx, s.ns, "checkout", 3)
	})

	It("tells a retry after the experiment ended whether its batch was counted", func() {
		s := newShop(ctx)
		exp := s.experiment(ctx, "checkout", cxv1.MetricCSAT, cxv1.PhaseProgressing)
		shared.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		rs := same(3, response{Variant: "one-page", Score: 4})
		Expect(s.post(ctx, shared, "checkout", "before-end", rs...)).To(Equal(reply{Code: 202, Accepted: 3, JSON: true}))

		setStatus(ctx, exp, cxv1.PhaseSucceeded, 1)
		shared.waitSeen(ctx, exp, cxv1.PhaseSucceeded, 1)
		// The retry of a batch committed before the end learns it was
		// counted, as it would during the run...
		Expect(s.post(ctx, shared, "checkout", "before-end", rs...)).To(Equal(reply{Code: 202, Duplicates: 3, JSON: true}))
		// ...anything else is refused, and nothing more is counted.
		ended := "experiment checkout is Succeeded; responses are accepted while it is Progressing or Paused"
		for _, key := range []string{"after-end", ""} {
			out := s.post(ctx, shared, "checkout", key, rs...)
			Expect(out.Code).To(Equal(http.StatusConflict), "key %q", key)
			Expect(out.Error).To(ContainSubstring(ended))
		}
		out := do(ctx, request{url: shared.url, ns: s.ns, experiment: "checkout", token: s.token, key: "before-end", body: `{"responses": [`})
		Expect(out.Code).To(Equal(http.StatusConflict), "a known key with a body that does not decode")
		Expect(out.Error).To(ContainSubstring(ended))
		expectTotal(ctx, s.ns, "checkout", 3)
	})

	It("deduplicates a retried batch by its Idempotency-Key", func() {
		s := newShop(ctx)
		exp := s.experiment(ctx, "checkout", cxv1.MetricCSAT, cxv1.PhaseProgressing)
		shared.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		rs := same(2, response{Variant: "one-page", Score: 5})

		Expect(s.post(ctx, shared, "checkout", "key-1", rs...)).To(Equal(reply{Code: 202, Accepted: 2, JSON: true}))
		Expect(s.post(ctx, shared, "checkout", "key-1", rs...)).To(Equal(reply{Code: 202, Duplicates: 2, JSON: true}))
		Expect(s.post(ctx, shared, "checkout", "key-2", rs...)).To(Equal(reply{Code: 202, Accepted: 2, JSON: true}))
		Expect(s.post(ctx, shared, "checkout", "", rs...)).To(Equal(reply{Code: 202, Accepted: 2, JSON: true}))
		t, err := getTally(ctx, s.ns, "checkout")
		Expect(err).NotTo(HaveOccurred())
		Expect(t.Spec.Total).To(Equal(int64(6)))
		Expect(string(t.Spec.RecentKeyDigests)).To(Equal(packedKeys(s.ns, 1, "key-1", "key-2")))
		Expect(metricValue(metrics.FeedbackResponses.WithLabelValues(s.ns, "checkout", "one-page", "all", "5"))).To(Equal(6.0))
	})

	It("recognises the keys of a tally written before recentKeyDigests, and moves them", func() {
		s := newShop(ctx)
		exp := s.experiment(ctx, "checkout", cxv1.MetricCSAT, cxv1.PhaseProgressing)
		shared.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		// The tally as a collector before recentKeyDigests wrote it.
		old := &cxv1.ResponseTally{
			ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "checkout",
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(exp, cxv1.GroupVersion.WithKind("CXExperiment"))}},
			Spec: cxv1.ResponseTallySpec{Experiment: "checkout", Run: 1, ScoreMin: 1, Total: 2,
				Counts:     []cxv1.TallyCount{{Segment: "all", Variant: "one-page", Scores: []int64{0, 0, 0, 0, 2}}},
				RecentKeys: []string{legacyDigest(s.ns, 1, "before-1"), legacyDigest(s.ns, 1, "before-2")}},
		}
		Expect(k8s.Create(ctx, old)).To(Succeed())
		Eventually(func() error { return shared.client.Get(ctx, client.ObjectKeyFromObject(old), &cxv1.ResponseTally{}) }).Should(Succeed())

		rs := same(2, response{Variant: "one-page", Score: 5})
		Expect(s.post(ctx, shared, "checkout", "before-2", rs...)).To(Equal(reply{Code: 202, Duplicates: 2, JSON: true}))
		Expect(s.post(ctx, shared, "checkout", "after-1", rs...)).To(Equal(reply{Code: 202, Accepted: 2, JSON: true}))
		Expect(s.post(ctx, shared, "checkout", "before-1", rs...)).To(Equal(reply{Code: 202, Duplicates: 2, JSON: true}))
		t, err := getTally(ctx, s.ns, "checkout")
		Expect(err).NotTo(HaveOccurred())
		Expect(t.Spec.Total).To(Equal(int64(4)))
		Expect(t.Spec.RecentKeys).To(BeEmpty(), "the first write moves the legacy digests")
		Expect(string(t.Spec.RecentKeyDigests)).To(Equal(packedKeys(s.ns, 1, "before-1", "before-2", "after-1")))

	})

	It("keeps keys in the deprecated list, as earlier versions wrote it, while the CRD lacks recentKeyDigests", func() {
		s := newShop(ctx)
		exp := s.experiment(ctx, "checkout", cxv1.MetricCSAT, cxv1.PhaseProgressing)
		// A replica told that the CRD is older (the manager's start-up check).
		listing, err := startReplica(ctx, collector.Options{RateLimit: -1, KeysInList: true})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(listing.stop)
		listing.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		rs := same(2, response{Variant: "one-page", Score: 5})
		Expect(s.post(ctx, listing, "checkout", "key-1", rs...)).To(Equal(reply{Code: 202, Accepted: 2, JSON: true}))
		Expect(s.post(ctx, listing, "checkout", "key-1", rs...)).To(Equal(reply{Code: 202, Duplicates: 2, JSON: true}))
		t, err := getTally(ctx, s.ns, "checkout")
		Expect(err).NotTo(HaveOccurred())
		Expect(t.Spec.RecentKeyDigests).To(BeEmpty())
		// The 22-character digest earlier versions write and look up.
		Expect(t.Spec.RecentKeys).To(Equal([]string{legacyDigest(s.ns, 1, "key-1")}))

		// A replica of the current schema recognises the listed key and
		// moves it into the packed field.
		shared.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		Expect(s.post(ctx, shared, "checkout", "key-1", rs...)).To(Equal(reply{Code: 202, Duplicates: 2, JSON: true}))
		Expect(s.post(ctx, shared, "checkout", "key-2", rs...)).To(Equal(reply{Code: 202, Accepted: 2, JSON: true}))
		t, err = getTally(ctx, s.ns, "checkout")
		Expect(err).NotTo(HaveOccurred())
		Expect(t.Spec.Total).To(Equal(int64(4)))
		Expect(t.Spec.RecentKeys).To(BeEmpty())
		Expect(string(t.Spec.RecentKeyDigests)).To(Equal(packedKeys(s.ns, 1, "key-1", "key-2")))
	})

	It("counts concurrent requests with the same key once", func() {
		s := newShop(ctx)
		exp := s.experiment(ctx, "checkout", cxv1.MetricCSAT, cxv1.PhaseProgressing)
		shared.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		rs := same(5, response{Variant: "control", Score: 2})
		const n = 16
		replies := make([]reply, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				defer GinkgoRecover()
				replies[i] = s.post(ctx, shared, "checkout", "one-key", rs...)
			})
		}
		wg.Wait()
		accepted, dups := 0, 0
		for _, r := range replies {
			Expect(r.Code).To(Equal(http.StatusAccepted))
			accepted += r.Accepted
			dups += r.Duplicates
		}
		Expect(accepted).To(Equal(5))
		Expect(dups).To(Equal(5 * (n - 1)))
		expectTotal(ctx, s.ns, "checkout", 5)
	})

	It("starts the counts and keys over when the experiment starts a new run", func() {
		s := newShop(ctx)
		exp := s.experiment(ctx, "checkout", cxv1.MetricCSAT, cxv1.PhaseProgressing)
		shared.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		Expect(s.post(ctx, shared, "checkout", "k", same(3, response{Variant: "control", Score: 1})...).Accepted).To(Equal(3))

		setStatus(ctx, exp, cxv1.PhaseProgressing, 2)
		shared.waitSeen(ctx, exp, cxv1.PhaseProgressing, 2)
		src := &collectorsource.Source{Reader: shared.client}
		res, err := src.Tallies(ctx, query(ctx, exp))
		Expect(err).NotTo(HaveOccurred())
		Expect(res.Tallies).To(BeEmpty(), "run 1's counts are not run 2's data")

		// The same key in a new run is a new batch.
		Expect(s.post(ctx, shared, "checkout", "k", same(2, response{Variant: "one-page", Score: 5})...).Accepted).To(Equal(2))
		t, err := getTally(ctx, s.ns, "checkout")
		Expect(err).NotTo(HaveOccurred())
		Expect(t.Spec.Run).To(Equal(int32(2)))
		Expect(t.Spec.Total).To(Equal(int64(2)))
		Expect(t.Spec.Counts).To(Equal([]cxv1.TallyCount{{Segment: "all", Variant: "one-page", Scores: []int64{0, 0, 0, 0, 2}}}))
		Expect(string(t.Spec.RecentKeyDigests)).To(Equal(packedKeys(s.ns, 2, "k")))
	})

	It("loses nothing across a restart between the 202 and the next read", func() {
		s := newShop(ctx)
		exp := s.experiment(ctx, "checkout", cxv1.MetricCSAT, cxv1.PhaseProgressing, "enterprise", "smb")
		first, err := startReplica(ctx, collector.Options{RateLimit: -1})
		Expect(err).NotTo(HaveOccurred())
		first.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() {
				defer GinkgoRecover()
				seg := []string{"enterprise", "smb"}[i%2]
				out := s.post(ctx, first, "checkout", fmt.Sprintf("b%d", i), same(10, response{Variant: "one-page", Segment: seg, Score: 1 + i%5})...)
				Expect(out.Code).To(Equal(http.StatusAccepted))
			})
		}
		wg.Wait()
		Expect(first.stop()).To(Succeed())

		// A new process: new cache, new server, nothing carried over.
		second, err := startReplica(ctx, collector.Options{RateLimit: -1})
		Expect(err).NotTo(HaveOccurred())
		defer func() { Expect(second.stop()).To(Succeed()) }()
		res, err := (&collectorsource.Source{Reader: second.client}).Tallies(ctx, query(ctx, exp))
		Expect(err).NotTo(HaveOccurred())
		Expect(res.Tallies).To(Equal(measure.Tallies{
			// Batches 0,2,4,6,8 (enterprise) and 1,3,5,7,9 (smb) each cover
			// scores 1..5 once, ten responses a batch.
			"enterprise": {"one-page": {10, 10, 10, 10, 10}},
			"smb":        {"one-page": {10, 10, 10, 10, 10}},
		}))
		second.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		Expect(s.post(ctx, second, "checkout", "b3", same(10, response{Variant: "one-page", Segment: "smb", Score: 4})...)).
			To(Equal(reply{Code: 202, Duplicates: 10, JSON: true}), "a retry after the restart is recognised")
	})

	It("never loses or doubles counts with two replicas hammered concurrently", func() {
		s := newShop(ctx)
		exp := s.experiment(ctx, "checkout", cxv1.MetricCSAT, cxv1.PhaseProgressing, "enterprise", "smb")
		a, err := startReplica(ctx, collector.Options{RateLimit: -1})
		Expect(err).NotTo(HaveOccurred())
		defer func() { Expect(a.stop()).To(Succeed()) }()
		b, err := startReplica(ctx, collector.Options{RateLimit: -1})
		Expect(err).NotTo(HaveOccurred())
		defer func() { Expect(b.stop()).To(Succeed()) }()
		a.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		b.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)

		const perReplica, size, workers = 30, 20, 6
		before, conflictsBefore := commits(), conflicts()
		var mu sync.Mutex
		accepted, duplicates := 0, 0
		var wg sync.WaitGroup
		for ri, r := range []*replica{a, b} {
			other := []*replica{b, a}[ri]
			jobs := make(chan int, perReplica)
			for i := range perReplica {
				jobs <- i
			}
			close(jobs)
			for range workers {
				wg.Go(func() {
					defer GinkgoRecover()
					for i := range jobs {
						key := fmt.Sprintf("r%d-b%d", ri, i)
						rs := same(size, response{Variant: []string{"control", "one-page"}[i%2], Segment: []string{"enterprise", "smb"}[ri], Score: 1 + i%5})
						out := s.postRetrying(ctx, r, "checkout", key, rs...)
						Expect(out.Code).To(Equal(http.StatusAccepted), "%s: %+v", key, out)
						// The client lost the 202 and retries on the other replica.
						again := s.postRetrying(ctx, other, "checkout", key, rs...)
						Expect(again.Code).To(Equal(http.StatusAccepted), "%s retry: %+v", key, again)
						mu.Lock()
						accepted += out.Accepted + again.Accepted
						duplicates += out.Duplicates + again.Duplicates
						mu.Unlock()
					}
				})
			}
		}
		wg.Wait()
		Expect(accepted).To(Equal(2 * perReplica * size))
		Expect(duplicates).To(Equal(2 * perReplica * size))
		t, err := getTally(ctx, s.ns, "checkout")
		Expect(err).NotTo(HaveOccurred())
		Expect(t.Spec.Total).To(Equal(int64(2 * perReplica * size)))
		var sum int64
		for _, c := range t.Spec.Counts {
			for _, n := range c.Scores {
				sum += n
			}
		}
		Expect(sum).To(Equal(t.Spec.Total))
		Expect(t.Spec.RecentKeyDigests).To(HaveLen(2 * perReplica * collector.PackedDigestSize))
		requests := 4 * perReplica
		writes := commits() - before
		AddReportEntry("group commit", fmt.Sprintf("%d requests (half of them duplicate retries) committed in %.0f writes, %.0f of which lost a conflict to the other replica first",
			requests, writes, conflicts()-conflictsBefore))
		Expect(writes).To(BeNumerically("<=", requests))
	})

	It("feeds the measure Source with exactly what was committed", func() {
		s := newShop(ctx)
		exp := s.experiment(ctx, "checkout", cxv1.MetricCSAT, cxv1.PhaseProgressing, "enterprise", "smb")
		shared.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		Expect(s.post(ctx, shared, "checkout", "", append(same(4, response{Variant: "control", Segment: "enterprise", Score: 5}),
			same(2, response{Variant: "one-page", Segment: "enterprise", Score: 2})...)...).Code).To(Equal(http.StatusAccepted))
		t, err := getTally(ctx, s.ns, "checkout")
		Expect(err).NotTo(HaveOccurred())
		committedAt, err := time.Parse(time.RFC3339Nano, t.Annotations[collector.AnnotationLastCommitAt])
		Expect(err).NotTo(HaveOccurred())

		src := &collectorsource.Source{Reader: shared.client}
		Eventually(func(g Gomega) { // the cache sees the commit after its watch event
			res, err := src.Tallies(ctx, query(ctx, exp))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Tallies).To(Equal(measure.Tallies{"enterprise": {"control": {0, 0, 0, 0, 4}, "one-page": {0, 2, 0, 0, 0}}}))
			g.Expect(res.Missing).To(ConsistOf("smb/control", "smb/one-page"))
			// Equal to the nanosecond: the annotation, not managedFields (seconds), was read.
			g.Expect(res.LastResponseAt.Equal(committedAt)).To(BeTrue(), "LastResponseAt %v, committed at %v", res.LastResponseAt, committedAt)
		}).Should(Succeed())
	})

	It("creates no metric series or state for unknown experiments", func() {
		s := newShop(ctx)
		exp := s.experiment(ctx, "checkout", cxv1.MetricCSAT, cxv1.PhaseProgressing)
		shared.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		for i := range 200 {
			out := s.post(ctx, shared, fmt.Sprintf("bogus-%d", i), "", response{Variant: "control", Score: 5})
			Expect(out.Code).To(Equal(http.StatusNotFound))
		}
		families, err := ctrlmetrics.Registry.Gather()
		Expect(err).NotTo(HaveOccurred())
		for _, f := range families {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					Expect(l.GetValue()).NotTo(HavePrefix("bogus-"), "series %s%v", f.GetName(), m.GetLabel())
				}
			}
		}
	})
})

// query asks the Source for every segment and variant of exp as it is now.
func query(ctx context.Context, exp *cxv1.CXExperiment) measure.Query {
	cur := &cxv1.CXExperiment{}
	Expect(k8s.Get(ctx, client.ObjectKeyFromObject(exp), cur)).To(Succeed())
	set, err := cur.Spec.Satisfaction.Settings()
	Expect(err).NotTo(HaveOccurred())
	var variants []string
	for _, v := range cur.Spec.Variants {
		variants = append(variants, v.Name)
	}
	return measure.Query{Experiment: cur, Settings: set, Segments: cur.Spec.SegmentNames(), Variants: variants}
}
