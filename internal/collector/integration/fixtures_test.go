package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/collector"
)

// shop is one test's namespace with a feedback token.
type shop struct {
	ns    string
	token string
}

func newShop(ctx context.Context) *shop {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "collector-"}}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	s := &shop{ns: ns.Name, token: hex.EncodeToString(b)}
	Expect(k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "feedback-token", Namespace: s.ns, Labels: map[string]string{cxv1.LabelFeedbackToken: "true"}},
		Data:       map[string][]byte{cxv1.FeedbackTokenKey: []byte(s.token)},
	})).To(Succeed())
	return s
}

// experiment creates a CSAT experiment (or NPS) and sets its status as the
// controller would: the collector reads only phase and run.
func (s *shop) experiment(ctx context.Context, name string, metric cxv1.SatisfactionMetricKind, phase cxv1.ExperimentPhase, segments ...string) *cxv1.CXExperiment {
	exp := &cxv1.CXExperiment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
		Spec: cxv1.CXExperimentSpec{
			Variants: []cxv1.Variant{
				{Name: "control", Control: true, Service: &cxv1.ServiceRef{Name: "checkout-v1", Port: 8080}},
				{Name: "one-page", Service: &cxv1.ServiceRef{Name: "checkout-v2", Port: 8080}},
			},
			Segments: segments,
			Traffic:  cxv1.Traffic{GatewayAPI: &cxv1.GatewayAPITraffic{HTTPRoute: "checkout"}},
			Steps:    []cxv1.Step{{Weight: 10, MinDuration: metav1.Duration{Duration: time.Minute}}},
			Satisfaction: cxv1.Satisfaction{
				Metric: metric, MaxDrop: "3", Confidence: "95", MinResponses: 100,
				Source:   cxv1.SatisfactionSource{Collector: &cxv1.CollectorSource{}},
				Interval: metav1.Duration{Duration: time.Second},
			},
		},
	}
	Expect(k8s.Create(ctx, exp)).To(Succeed())
	setStatus(ctx, exp, phase, 1)
	return exp
}

func setStatus(ctx context.Context, exp *cxv1.CXExperiment, phase cxv1.ExperimentPhase, run int32) {
	Eventually(func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(exp), exp); err != nil {
			return err
		}
		exp.Status.Phase, exp.Status.Run = phase, run
		return k8s.Status().Update(ctx, exp)
	}).Should(Succeed())
}

// waitSeen waits until a replica's cache holds the experiment at the given
// phase and run, and the namespace's token: requests before that would be
// judged on an older view.
func (r *replica) waitSeen(ctx context.Context, exp *cxv1.CXExperiment, phase cxv1.ExperimentPhase, run int32) {
	Eventually(func(g Gomega) {
		got := &cxv1.CXExperiment{}
		g.Expect(r.client.Get(ctx, client.ObjectKeyFromObject(exp), got)).To(Succeed())
		g.Expect(got.Status.Phase).To(Equal(phase))
		g.Expect(got.Status.Run).To(Equal(run))
		var secrets corev1.SecretList
		g.Expect(r.client.List(ctx, &secrets, client.InNamespace(exp.Namespace))).To(Succeed())
		g.Expect(secrets.Items).NotTo(BeEmpty())
	}).Should(Succeed())
}

type response struct {
	Variant    string `json:"variant"`
	Segment    string `json:"segment,omitempty"`
	Score      any    `json:"score"`
	Respondent string `json:"respondent,omitempty"`
}

func batchBody(rs ...response) string {
	b, err := json.Marshal(map[string]any{"responses": rs})
	Expect(err).NotTo(HaveOccurred())
	return string(b)
}

// same returns n copies of one response.
func same(n int, r response) []response {
	out := make([]response, n)
	for i := range out {
		out[i] = r
	}
	return out
}

// reply is a collector answer.
type reply struct {
	Code       int
	Accepted   int    `json:"accepted"`
	Duplicates int    `json:"duplicates"`
	Error      string `json:"error"`
	RetryAfter string
	JSON       bool
}

var httpClient = &http.Client{Timeout: 90 * time.Second}

// request posts body to a collector; header values "" are not sent.
type request struct {
	url, ns, experiment string
	token, contentType  string
	key, body           string
	authorization       string // overrides the bearer token when set
	noAuth              bool
}

func do(ctx context.Context, q request) reply {
	res, err := httpClient.Do(q.build(ctx))
	Expect(err).NotTo(HaveOccurred())
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	Expect(err).NotTo(HaveOccurred())
	out := reply{Code: res.StatusCode, RetryAfter: res.Header.Get("Retry-After")}
	out.JSON = json.Unmarshal(data, &out) == nil && res.Header.Get("Content-Type") == "application/json"
	return out
}

// build makes the HTTP request for q.
func (q request) build(ctx context.Context) *http.Request {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		fmt.Sprintf("%s/v1/namespaces/%s/experiments/%s/responses", q.url, q.ns, q.experiment), bytes.NewReader([]byte(q.body)))
	Expect(err).NotTo(HaveOccurred())
	switch {
	case q.authorization != "":
		req.Header.Set("Authorization", q.authorization)
	case !q.noAuth:
		req.Header.Set("Authorization", "Bearer "+q.token)
	}
	ct := q.contentType
	if ct == "" {
		ct = "application/json"
	}
	req.Header.Set("Content-Type", ct)
	if q.key != "" {
		req.Header.Set("Idempotency-Key", q.key)
	}
	return req
}

// post sends a JSON batch from s to experiment on replica r.
func (s *shop) post(ctx context.Context, r *replica, experiment, key string, rs ...response) reply {
	return do(ctx, request{url: r.url, ns: s.ns, experiment: experiment, token: s.token, key: key, body: batchBody(rs...)})
}

// postRetrying posts like a well-behaved client: on 429 or 503 it waits a
// little and retries with the same Idempotency-Key.
func (s *shop) postRetrying(ctx context.Context, r *replica, experiment, key string, rs ...response) reply {
	var out reply
	for range 50 {
		out = s.post(ctx, r, experiment, key, rs...)
		if out.Code != http.StatusServiceUnavailable && out.Code != http.StatusTooManyRequests {
			return out
		}
		time.Sleep(20 * time.Millisecond) // client back-off, not synchronisation
	}
	return out
}

// packedKeys is the value of spec.recentKeyDigests of experiment
// "checkout" holding keys, in order.
func packedKeys(ns string, run int32, keys ...string) string {
	var out string
	for _, k := range keys {
		out += collector.KeyDigest(ns, "checkout", run, k)[:collector.PackedDigestSize]
	}
	return out
}

// legacyDigest is how collectors before spec.recentKeyDigests stored key in
// spec.recentKeys of experiment "checkout" (and how they look it up): the
// first 128 bits of SHA-256 over namespace, experiment, run and key, each
// followed by a zero byte, in unpadded base64url. Written out here, not
// taken from the collector, so that a change of its digest fails the specs.
func legacyDigest(ns string, run int32, key string) string {
	h := sha256.New()
	for _, part := range []string{ns, "checkout", strconv.Itoa(int(run)), key} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16])
}

func getTally(ctx context.Context, ns, name string) (*cxv1.ResponseTally, error) {
	t := &cxv1.ResponseTally{}
	return t, k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, t)
}

// expectTotal checks the tally of an experiment holds want responses.
func expectTotal(ctx context.Context, ns, name string, want int64) {
	GinkgoHelper()
	t, err := getTally(ctx, ns, name)
	Expect(err).NotTo(HaveOccurred())
	Expect(t.Spec.Total).To(Equal(want))
}

// scoresOf returns the counts of one segment and variant in a tally.
func scoresOf(t *cxv1.ResponseTally, segment, variant string) []int64 {
	for _, c := range t.Spec.Counts {
		if c.Segment == segment && c.Variant == variant {
			return c.Scores
		}
	}
	return nil
}
