package integration

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/assignment"
	"github.com/rapport-dev/rapport/internal/collector"
	"github.com/rapport-dev/rapport/internal/feedback"
)

// fakeSurveyMonkey answers GET /v3/surveys/{survey}/responses/{id}/details
// with the body registered for the response id, as SurveyMonkey's API does.
type fakeSurveyMonkey struct {
	*httptest.Server
	mu        sync.Mutex
	responses map[string][]byte
	tokens    []string
}

func newFakeSurveyMonkey() *fakeSurveyMonkey {
	f := &fakeSurveyMonkey{responses: map[string][]byte{}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.tokens = append(f.tokens, r.Header.Get("Authorization"))
		parts := strings.Split(r.URL.Path, "/") // /v3/surveys/{s}/responses/{id}/details
		if len(parts) != 7 || r.URL.Query().Get("simple") != "true" {
			http.Error(w, `{"error":{"message":"bad path"}}`, http.StatusBadRequest)
			return
		}
		body, ok := f.responses[parts[5]]
		if !ok {
			http.Error(w, `{"error":{"message":"not found"}}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	return f
}

func (f *fakeSurveyMonkey) set(id string, body []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.responses[id] = body
}

var _ = Describe("Webhooks from survey tools", Ordered, func() {
	var (
		ctx context.Context
		r   *replica
		sm  *fakeSurveyMonkey
	)
	BeforeAll(func() {
		ctx = context.Background()
		sm = newFakeSurveyMonkey()
		DeferCleanup(sm.Close)
		var err error
		r, err = startReplica(ctx, collector.Options{RateLimit: -1, PublicRateLimit: -1, SurveyMonkeyAPI: sm.URL, MaxBodyBytes: 64 << 10})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { Expect(r.stop()).To(Succeed()) })
	})

	type providerCase struct {
		provider cxv1.FeedbackProvider
		generic  *cxv1.GenericWebhook
		mapping  *cxv1.FeedbackMapping
		metric   cxv1.SatisfactionMetricKind
		file     string
		variant  string
		score    int
	}
	DescribeTable("counts each provider's fixture once into the tally, across its retries",
		func(tc providerCase) {
			s := newShop(ctx)
			exp, key := s.feedbackExperiment(ctx, "checkout", tc.metric, []string{"enterprise"}, nil)
			r.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
			data := providerSecrets()
			if tc.provider == cxv1.ProviderDelighted {
				data = map[string][]byte{feedback.KeyDelightedAPIKey: []byte("delighted-key")}
			}
			src := s.source(ctx, "survey", tc.provider, tc.generic, tc.mapping, data)
			r.waitSource(ctx, src)
			value := signed(key, exp, "enterprise", tc.variant)
			if tc.provider == cxv1.ProviderSurveyMonkey {
				sm.set("118855447700", fixture("surveymonkey-response_details.json", value))
			}
			body := fixture(tc.file, value)

			Expect(signedWebhook(ctx, r.url, src, data, body)).To(Equal(webhookReply{Code: http.StatusAccepted, Accepted: 1}))
			t, err := getTally(ctx, s.ns, "checkout")
			Expect(err).NotTo(HaveOccurred())
			Expect(t.Spec.Total).To(Equal(int64(1)))
			scores := scoresOf(t, "enterprise", tc.variant)
			Expect(scores).NotTo(BeNil())
			Expect(scores[tc.score-int(t.Spec.ScoreMin)]).To(Equal(int64(1)), "score %d counted for %s", tc.score, tc.variant)

			By("the provider retrying the same event")
			Expect(signedWebhook(ctx, r.url, src, data, body)).To(Equal(webhookReply{Code: http.StatusAccepted, Duplicates: 1}))
			expectTotal(ctx, s.ns, "checkout", 1)

			By("recording the accepted event in the source's status")
			Eventually(func(g Gomega) {
				got := &cxv1.FeedbackSource{}
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(src), got)).To(Succeed())
				g.Expect(got.Status.LastAcceptedAt).NotTo(BeNil())
			}).WithTimeout(feedbackWait).Should(Succeed())
		},
		Entry("Typeform (form_response, hidden field, CSAT)", providerCase{provider: cxv1.ProviderTypeform, metric: cxv1.MetricCSAT,
			file: "typeform-form_response.json", variant: "one-page", score: 4}),
		Entry("SurveyMonkey (response_completed, answers read from its API, NPS)", providerCase{provider: cxv1.ProviderSurveyMonkey, metric: cxv1.MetricNPS,
			file: "surveymonkey-response_completed.json", variant: "control", score: 9}),
		Entry("Survicate (questionAnswered, respondent attribute, NPS)", providerCase{provider: cxv1.ProviderSurvicate, metric: cxv1.MetricNPS,
			file: "survicate-question_answered.json", variant: "one-page", score: 8}),
		Entry("Delighted (survey_response.created, person property, NPS)", providerCase{provider: cxv1.ProviderDelighted, metric: cxv1.MetricNPS,
			file: "delighted-survey_response_created.json", variant: "control", score: 10}),
		Entry("Generic with HMAC (Rapport's own shape)", providerCase{provider: cxv1.ProviderGeneric, generic: &cxv1.GenericWebhook{Auth: cxv1.GenericAuthHMACSHA256},
			metric: cxv1.MetricCSAT, file: "generic.json", variant: "one-page", score: 3}),
		Entry("Generic with a token (an export mapped with CEL, reading a header)", providerCase{provider: cxv1.ProviderGeneric,
			generic: &cxv1.GenericWebhook{Auth: cxv1.GenericAuthToken, Header: "X-Export-Token"},
			mapping: &cxv1.FeedbackMapping{Accept: "headers['content-type'].startsWith('application/json')",
				EventID: "body.responseId", Assignment: "body.embeddedData.rapport", Score: "body.values.QID1 + 1", At: "body.recordedDate"},
			metric: cxv1.MetricCSAT, file: "generic-export.json", variant: "control", score: 3}),
	)

	It("acknowledges partial responses and Delighted's later update without counting them", func() {
		s := newShop(ctx)
		exp, key := s.feedbackExperiment(ctx, "checkout", cxv1.MetricNPS, nil, nil)
		r.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		value := signed(key, exp, cxv1.AllSegment, "one-page")
		data := map[string][]byte{feedback.KeyDelightedAPIKey: []byte("delighted-key"), feedback.KeyTypeformSecret: []byte("tf")}
		delighted := s.source(ctx, "delighted", cxv1.ProviderDelighted, nil, nil, data)
		typeform := s.source(ctx, "typeform", cxv1.ProviderTypeform, nil, nil, data)
		r.waitSource(ctx, delighted)
		r.waitSource(ctx, typeform)

		out := signedWebhook(ctx, r.url, typeform, data, fixture("typeform-form_response_partial.json", value))
		Expect(out.Code).To(Equal(http.StatusOK))
		Expect(out.Ignored).To(ContainSubstring("spec.mapping.accept is false"))

		Expect(signedWebhook(ctx, r.url, delighted, data, fixture("delighted-survey_response_created.json", value))).To(Equal(webhookReply{Code: http.StatusAccepted, Accepted: 1}))
		out = signedWebhook(ctx, r.url, delighted, data, fixture("delighted-survey_response_updated.json", value))
		Expect(out.Code).To(Equal(http.StatusOK), "the update with a comment is acknowledged: %+v", out)
		Expect(out.Accepted).To(BeZero())
		expectTotal(ctx, s.ns, "checkout", 1)
	})

	It("answers SurveyMonkey's HEAD check of the webhook URL", func() {
		s := newShop(ctx)
		src := s.source(ctx, "monkey", cxv1.ProviderSurveyMonkey, nil, nil, providerSecrets())
		r.waitSource(ctx, src)
		for path, want := range map[string]int{"monkey": http.StatusOK, "nope": http.StatusNotFound} {
			req, err := http.NewRequestWithContext(ctx, http.MethodHead, r.url+"/v1/namespaces/"+s.ns+"/sources/"+path+"/webhook", nil)
			Expect(err).NotTo(HaveOccurred())
			res, err := httpClient.Do(req)
			Expect(err).NotTo(HaveOccurred())
			res.Body.Close()
			Expect(res.StatusCode).To(Equal(want), path)
		}
	})

	It("refuses every kind of bad webhook with its status and reason, counting nothing and recording the last error", func() {
		s := newShop(ctx)
		exp, key := s.feedbackExperiment(ctx, "checkout", cxv1.MetricCSAT, []string{"enterprise"}, nil)
		ended, endedKey := s.feedbackExperiment(ctx, "ended", cxv1.MetricCSAT, []string{"enterprise"}, nil)
		setStatus(ctx, ended, cxv1.PhaseRolledBack, 1)
		r.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		r.waitSeen(ctx, ended, cxv1.PhaseRolledBack, 1)
		data := providerSecrets()
		typeform := s.source(ctx, "typeform", cxv1.ProviderTypeform, nil, nil, data)
		generic := s.source(ctx, "generic", cxv1.ProviderGeneric, &cxv1.GenericWebhook{Auth: cxv1.GenericAuthHMACSHA256}, nil, data)
		noSecret := &cxv1.FeedbackSource{}
		noSecret.Name, noSecret.Namespace = "no-secret", s.ns
		noSecret.Spec = cxv1.FeedbackSourceSpec{Provider: cxv1.ProviderTypeform, SecretRef: cxv1.LocalObjectRef{Name: "missing"}}
		Expect(k8s.Create(ctx, noSecret)).To(Succeed())
		monkey := s.source(ctx, "surveymonkey", cxv1.ProviderSurveyMonkey, nil, nil, data)
		for _, src := range []*cxv1.FeedbackSource{typeform, generic, noSecret, monkey} {
			r.waitSource(ctx, src)
		}
		// A response its API serves over the collector's 1 MiB limit.
		sm.set("too-large-1", []byte(`{"pages":[`+strings.Repeat(" ", 1<<20)+`]}`))
		tooLarge := bytes.ReplaceAll(fixture("surveymonkey-response_completed.json", ""), []byte("118855447700"), []byte("too-large-1"))

		good := signed(key, exp, "enterprise", "one-page")
		tf := string(fixture("typeform-form_response.json", good))
		tampered := strings.Replace(good, "~one-page~", "~control~", 1)
		otherRun := assignment.Sign(key, assignment.Assignment{Namespace: s.ns, Experiment: "checkout", Run: 2, Segment: "enterprise", Variant: "one-page"})
		genericBody := func(fields string) []byte { return []byte(`{"id":"e-1",` + fields + `}`) }
		sign := func(src *cxv1.FeedbackSource, body []byte) map[string]string {
			n, v := feedback.Sign(src.Spec.Provider, src.Spec.Generic, data, body)
			return map[string]string{n: v}
		}
		type badCase struct {
			name    string
			src     *cxv1.FeedbackSource
			body    []byte
			headers map[string]string // nil: signed correctly
			code    int
			reason  string
			msg     string
		}
		cases := []badCase{
			{name: "unsigned", src: typeform, body: []byte(tf), headers: map[string]string{}, code: 401, reason: "MissingSignature", msg: "the Typeform-Signature header is missing"},
			{name: "wrongly signed", src: typeform, body: []byte(tf), headers: map[string]string{feedback.HeaderTypeform: "sha256=bm90IHRoZSBzaWduYXR1cmU="}, code: 401, reason: "InvalidSignature", msg: "does not match the body"},
			{name: "signed, then changed", src: typeform, body: []byte(strings.Replace(tf, `"number": 4`, `"number": 5`, 1)), headers: sign(typeform, []byte(tf)), code: 401, reason: "InvalidSignature", msg: "does not match the body"},
			{name: "too large", src: typeform, body: []byte(tf + strings.Repeat(" ", 64<<10)), code: 413, reason: "TooLarge", msg: "at most 65536 are accepted"},
			{name: "not JSON", src: typeform, body: []byte(`{"event_id":`), code: 400, reason: "InvalidJSON", msg: "the body is not JSON"},
			{name: "a payload the mapping cannot read", src: typeform, body: []byte(strings.ReplaceAll(tf, "opinion_scale", "short_text")), code: 422, reason: "MappingFailed", msg: "the Typeform default of spec.mapping.score"},
			{name: "an unknown experiment", src: generic, body: genericBody(`"experiment":"nope","variant":"control","segment":"enterprise","score":4`), code: 422, reason: "UnknownExperiment", msg: `spec.mapping.experiment names experiment "nope", which does not exist`},
			{name: "an unknown variant", src: generic, body: genericBody(`"experiment":"checkout","variant":"two-page","segment":"enterprise","score":4`), code: 422, reason: "UnknownVariant", msg: `spec.mapping.variant: "two-page" is not a variant of experiment checkout; use one of control, one-page`},
			{name: "an unknown segment", src: generic, body: genericBody(`"experiment":"checkout","variant":"control","segment":"smb","score":4`), code: 422, reason: "UnknownSegment", msg: `spec.mapping.segment: "smb" is not a segment of the experiment`},
			{name: "a score off the scale", src: generic, body: genericBody(`"experiment":"checkout","variant":"control","segment":"enterprise","score":9`), code: 422, reason: "ScoreOffScale", msg: "spec.mapping.score: 9 is outside the CSAT scale 1..5"},
			{name: "a tampered assignment", src: typeform, body: fixture("typeform-form_response.json", tampered), code: 422, reason: "ForgedAssignment", msg: "signature does not match"},
			{name: "an assignment of another run", src: typeform, body: fixture("typeform-form_response.json", otherRun), code: 409, reason: "ExpiredAssignment", msg: "spec.mapping.assignment has expired: it is from run 2 of experiment checkout, which is in run 1 now"},
			{name: "an experiment that ended", src: typeform, body: fixture("typeform-form_response.json", signed(endedKey, ended, "enterprise", "control")), code: 409, reason: "ExperimentNotAccepting", msg: "experiment ended is RolledBack"},
			{name: "a SurveyMonkey response over 1 MiB", src: monkey, body: tooLarge, code: 422, reason: "ProviderAPIFailed", msg: "larger than 1048576 bytes"},
			{name: "a Secret that is missing", src: noSecret, body: []byte(tf), headers: map[string]string{}, code: 503, reason: "SecretUnavailable", msg: "Secret missing of the FeedbackSource's spec.secretRef does not exist"},
		}
		for _, tc := range cases {
			headers := tc.headers
			if headers == nil {
				headers = sign(tc.src, tc.body)
			}
			source := "feedbacksource/" + tc.src.Name
			before := rejections(s.ns, source, tc.reason)
			out := postWebhook(ctx, r.url, s.ns, tc.src.Name, tc.body, headers)
			Expect(out.Code).To(Equal(tc.code), "%s: %+v", tc.name, out)
			Expect(out.Error).To(ContainSubstring(tc.msg), tc.name)
			Expect(out.Accepted+out.Duplicates).To(BeZero(), tc.name)
			Expect(rejections(s.ns, source, tc.reason)-before).To(Equal(1.0), "%s: counted under reason %s", tc.name, tc.reason)
			Eventually(func(g Gomega) {
				got := &cxv1.FeedbackSource{}
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(tc.src), got)).To(Succeed())
				g.Expect(got.Status.LastError).NotTo(BeNil())
				g.Expect(got.Status.LastError.Reason).To(Equal(tc.reason))
				g.Expect(got.Status.LastError.Code).To(Equal(int32(tc.code)))
			}).WithTimeout(feedbackWait).Should(Succeed(), "%s: the source's status.lastError", tc.name)
		}
		Expect(tallyTotal(ctx, s.ns, "checkout")).To(BeZero(), "nothing may be counted")
		Expect(tallyTotal(ctx, s.ns, "ended")).To(BeZero())

		By("answering 404 for a source that does not exist, without a metric series of its name")
		before := rejections("", "unknown", "SourceNotFound")
		out := postWebhook(ctx, r.url, s.ns, "nope", []byte(tf), map[string]string{})
		Expect(out.Code).To(Equal(http.StatusNotFound))
		Expect(out.Error).To(ContainSubstring("FeedbackSource nope not found in namespace " + s.ns))
		Expect(rejections("", "unknown", "SourceNotFound") - before).To(Equal(1.0))

		By("counting the good event once the bad ones are out of the way")
		Expect(postWebhook(ctx, r.url, s.ns, "typeform", []byte(tf), sign(typeform, []byte(tf)))).To(Equal(webhookReply{Code: http.StatusAccepted, Accepted: 1}))
		expectTotal(ctx, s.ns, "checkout", 1)
	})

	It("picks up a rotated signing secret at once", func() {
		s := newShop(ctx)
		exp, key := s.feedbackExperiment(ctx, "checkout", cxv1.MetricCSAT, nil, nil)
		r.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		data := map[string][]byte{feedback.KeyTypeformSecret: []byte("old")}
		src := s.source(ctx, "typeform", cxv1.ProviderTypeform, nil, nil, data)
		r.waitSource(ctx, src)
		body := fixture("typeform-form_response.json", signed(key, exp, cxv1.AllSegment, "control"))
		partial := fixture("typeform-form_response_partial.json", "x")
		Expect(signedWebhook(ctx, r.url, src, data, partial).Code).To(Equal(http.StatusOK)) // the old secret is cached

		sec := &corev1.Secret{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: "typeform-secret"}, sec)).To(Succeed())
		data = map[string][]byte{feedback.KeyTypeformSecret: []byte("new")}
		sec.Data = data
		Expect(k8s.Update(ctx, sec)).To(Succeed())
		// Within the Secret's re-read delay (5 s after a failed signature), not its TTL (30 s).
		Eventually(func() int { return signedWebhook(ctx, r.url, src, data, body).Code }).WithTimeout(25 * time.Second).WithPolling(time.Second).Should(Equal(http.StatusAccepted))
		expectTotal(ctx, s.ns, "checkout", 1)
	})
})
