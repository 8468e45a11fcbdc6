package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/assignment"
	"github.com/rapport-dev/rapport/internal/collector"
)

const shopOrigin = "https://shop.example.com"

// browserOn allows answers from shopOrigin (and from the origins in a Secret).
func browserOn(exp *cxv1.CXExperiment) {
	exp.Spec.Satisfaction.Source.Collector.Browser = &cxv1.BrowserFeedback{
		AllowedOrigins:          []string{shopOrigin},
		AllowedOriginsSecretRef: &cxv1.SecretKeyRef{Name: "origins", Key: "list"},
	}
}

// publicReply is the collector's answer at the public endpoint.
type publicReply struct {
	Code       int
	Accepted   int    `json:"accepted"`
	Duplicates int    `json:"duplicates"`
	Error      string `json:"error"`
	Header     http.Header
}

// public sends a request to the public endpoint of experiment; origin ""
// sends no Origin header.
func public(ctx context.Context, url, method, ns, experiment, suffix, origin string, body any) publicReply {
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			b, err = json.Marshal(body)
			Expect(err).NotTo(HaveOccurred())
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, fmt.Sprintf("%s/v1/public/namespaces/%s/experiments/%s%s", url, ns, experiment, suffix), rd)
	Expect(err).NotTo(HaveOccurred())
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if method == http.MethodOptions {
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
	}
	res, err := httpClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	Expect(err).NotTo(HaveOccurred())
	out := publicReply{Code: res.StatusCode, Header: res.Header}
	if len(data) > 0 && res.StatusCode != http.StatusOK {
		Expect(json.Unmarshal(data, &out)).To(Succeed(), "the answer is JSON: %s", data)
	}
	return out
}

func answer(value, respondent string, score any) map[string]any {
	return map[string]any{"assignment": value, "respondent": respondent, "score": score}
}

var _ = Describe("Public endpoint for customers' browsers", Ordered, func() {
	var (
		ctx context.Context
		r   *replica
	)
	BeforeAll(func() {
		ctx = context.Background()
		var err error
		r, err = startReplica(ctx, collector.Options{RateLimit: -1, PublicRateLimit: -1})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { Expect(r.stop()).To(Succeed()) })
	})

	It("counts an answer with a signed assignment once per respondent, for the variant and segment the cookie names", func() {
		s := newShop(ctx)
		exp, key := s.feedbackExperiment(ctx, "checkout", cxv1.MetricCSAT, []string{"enterprise", "smb"}, browserOn)
		r.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		value := signed(key, exp, "smb", "one-page")

		By("serving the survey's settings to an allowed origin")
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v1/public/namespaces/%s/experiments/checkout", r.url, s.ns), nil)
		req.Header.Set("Origin", shopOrigin)
		res, err := httpClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		var settings map[string]any
		Expect(json.NewDecoder(res.Body).Decode(&settings)).To(Succeed())
		res.Body.Close()
		Expect(res.Header.Get("Access-Control-Allow-Origin")).To(Equal(shopOrigin))
		Expect(settings).To(Equal(map[string]any{"namespace": s.ns, "experiment": "checkout", "touchpoint": "checkout", "metric": "CSAT",
			"scaleMin": 1.0, "scaleMax": 5.0, "run": 1.0, "cookie": "rapport-checkout", "accepting": true}))

		By("answering the preflight with the CORS headers")
		pre := public(ctx, r.url, http.MethodOptions, s.ns, "checkout", "/responses", shopOrigin, nil)
		Expect(pre.Code).To(Equal(http.StatusNoContent))
		Expect(pre.Header.Get("Access-Control-Allow-Origin")).To(Equal(shopOrigin))
		Expect(pre.Header.Get("Access-Control-Allow-Methods")).To(Equal("POST"))
		Expect(pre.Header.Get("Access-Control-Allow-Headers")).To(Equal("Content-Type"))
		Expect(pre.Header.Get("Access-Control-Allow-Credentials")).To(BeEmpty(), "no credentials: the assignment travels in the body")

		out := public(ctx, r.url, http.MethodPost, s.ns, "checkout", "/responses", shopOrigin, answer(value, "resp-0000000001", 2))
		Expect(out.Code).To(Equal(http.StatusAccepted), "%+v", out)
		Expect(out.Accepted).To(Equal(1))
		Expect(out.Header.Get("Access-Control-Allow-Origin")).To(Equal(shopOrigin))
		t, err := getTally(ctx, s.ns, "checkout")
		Expect(err).NotTo(HaveOccurred())
		Expect(scoresOf(t, "smb", "one-page")).To(Equal([]int64{0, 1, 0, 0, 0}))
		Expect(t.Spec.Total).To(Equal(int64(1)))

		By("counting a second answer of the same respondent as a duplicate")
		out = public(ctx, r.url, http.MethodPost, s.ns, "checkout", "/responses", shopOrigin, answer(value, "resp-0000000001", 5))
		Expect(out.Code).To(Equal(http.StatusAccepted))
		Expect(out.Duplicates).To(Equal(1))
		expectTotal(ctx, s.ns, "checkout", 1)

		By("accepting an origin listed in the Secret")
		Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "origins", Namespace: s.ns},
			Data: map[string][]byte{"list": []byte("https://m.shop.example.com\nhttps://app.shop.example.com/\n")}})).To(Succeed())
		Eventually(func() int {
			return public(ctx, r.url, http.MethodPost, s.ns, "checkout", "/responses", "https://app.shop.example.com", answer(value, "resp-0000000002", 4)).Code
		}).WithTimeout(feedbackWait).WithPolling(2 * time.Second).Should(Equal(http.StatusAccepted)) // the list is re-read every 30 s
		expectTotal(ctx, s.ns, "checkout", 2)
	})

	It("refuses every kind of bad browser answer with its status and reason, counting nothing", func() {
		s := newShop(ctx)
		exp, key := s.feedbackExperiment(ctx, "checkout", cxv1.MetricCSAT, []string{"enterprise"}, browserOn)
		closed, _ := s.feedbackExperiment(ctx, "closed", cxv1.MetricCSAT, nil, nil)
		other, otherKey := s.feedbackExperiment(ctx, "other", cxv1.MetricCSAT, []string{"enterprise"}, browserOn)
		r.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		r.waitSeen(ctx, closed, cxv1.PhaseProgressing, 1)
		r.waitSeen(ctx, other, cxv1.PhaseProgressing, 1)
		good := signed(key, exp, "enterprise", "control")
		expired := assignment.Sign(key, assignment.Assignment{Namespace: s.ns, Experiment: "checkout", Run: 2, Segment: "enterprise", Variant: "control"})
		for _, tc := range []struct {
			name, method, experiment, origin string
			body                             any
			code                             int
			reason, msg                      string
		}{
			{"no Origin header", "POST", "checkout", "", answer(good, "resp-00000001", 4), 403, "MissingOrigin", "the Origin header is missing"},
			{"another origin", "POST", "checkout", "https://evil.example.net", answer(good, "resp-00000001", 4), 403, "OriginNotAllowed", "origin https://evil.example.net may not post answers for experiment checkout"},
			{"another origin's preflight", "OPTIONS", "checkout", "https://evil.example.net", nil, 403, "OriginNotAllowed", "add it to spec.satisfaction.source.collector.browser.allowedOrigins"},
			{"an experiment that takes no browser answers", "POST", "closed", shopOrigin, answer(good, "resp-00000001", 4), 403, "BrowserNotEnabled", "experiment closed does not take answers from browsers"},
			{"a tampered cookie (another variant)", "POST", "checkout", shopOrigin, answer(strings.Replace(good, "~control~", "~one-page~", 1), "resp-00000001", 4), 403, "ForgedAssignment", "signature does not match"},
			{"a cookie of another experiment", "POST", "checkout", shopOrigin, answer(signed(otherKey, other, "enterprise", "control"), "resp-00000001", 4), 403, "ForgedAssignment", "it is an assignment of experiment other"},
			{"a made-up cookie", "POST", "checkout", shopOrigin, answer("control", "resp-00000001", 4), 403, "ForgedAssignment", "not a Rapport assignment value"},
			{"no cookie", "POST", "checkout", shopOrigin, answer("", "resp-00000001", 4), 403, "ForgedAssignment", "assignment is missing"},
			{"an expired cookie", "POST", "checkout", shopOrigin, answer(expired, "resp-00000001", 4), 409, "ExpiredAssignment", "assignment has expired: it is from run 2 of experiment checkout, which is in run 1 now"},
			{"a score off the scale", "POST", "checkout", shopOrigin, answer(good, "resp-00000001", 6), 422, "ScoreOffScale", "score: 6 is outside the CSAT scale 1..5"},
			{"a fractional score", "POST", "checkout", shopOrigin, answer(good, "resp-00000001", 4.5), 422, "ScoreOffScale", "4.5 is not a whole number"},
			{"a respondent that is not an opaque id", "POST", "checkout", shopOrigin, answer(good, "ada@example.com", 4), 422, "InvalidAnswer", "respondent must be 8..64 characters"},
			{"an unknown field", "POST", "checkout", shopOrigin, map[string]any{"assignment": good, "respondent": "resp-00000001", "score": 4, "email": "x"}, 400, "InvalidAnswer", "unknown field"},
			{"a body too large", "POST", "checkout", shopOrigin, []byte(`{"assignment":"` + strings.Repeat("a", 5000) + `"}`), 413, "TooLarge", "larger than 4096 bytes"},
			{"another method", "PUT", "checkout", shopOrigin, nil, 405, "MethodNotAllowed", "method PUT is not allowed"},
		} {
			source := "browser/" + tc.experiment
			if tc.reason == "MethodNotAllowed" || tc.reason == "MissingOrigin" {
				source = "" // refused before the experiment is read
			}
			ns := s.ns
			if source == "" {
				ns, source = "", "unknown"
			}
			before := rejections(ns, source, tc.reason)
			out := public(ctx, r.url, tc.method, s.ns, tc.experiment, map[bool]string{true: "/responses", false: ""}[tc.method != "GET"], tc.origin, tc.body)
			Expect(out.Code).To(Equal(tc.code), "%s: %+v", tc.name, out)
			Expect(out.Error).To(ContainSubstring(tc.msg), tc.name)
			Expect(out.Accepted+out.Duplicates).To(BeZero(), tc.name)
			switch tc.reason {
			case "OriginNotAllowed", "MissingOrigin", "MethodNotAllowed", "BrowserNotEnabled":
				Expect(out.Header.Get("Access-Control-Allow-Origin")).To(BeEmpty(), "%s: a refused origin gets no CORS header", tc.name)
			default: // the page's script may read why its answer was refused
				Expect(out.Header.Get("Access-Control-Allow-Origin")).To(Equal(shopOrigin), tc.name)
			}
			Expect(rejections(ns, source, tc.reason)-before).To(Equal(1.0), "%s: counted under reason %s", tc.name, tc.reason)
		}
		Expect(tallyTotal(ctx, s.ns, "checkout")).To(BeZero(), "nothing may be counted")
		Expect(tallyTotal(ctx, s.ns, "closed")).To(BeZero())

		By("answering 404 for an experiment that does not exist")
		out := public(ctx, r.url, http.MethodPost, s.ns, "nope", "/responses", shopOrigin, answer(good, "resp-00000001", 4))
		Expect(out.Code).To(Equal(http.StatusNotFound))
		Expect(out.Error).To(ContainSubstring("check data-namespace and data-experiment"))
	})

	It("refuses answers once the experiment has ended, and says so in the settings", func() {
		s := newShop(ctx)
		exp, key := s.feedbackExperiment(ctx, "checkout", cxv1.MetricNPS, nil, browserOn)
		setStatus(ctx, exp, cxv1.PhaseSucceeded, 1)
		r.waitSeen(ctx, exp, cxv1.PhaseSucceeded, 1)
		out := public(ctx, r.url, http.MethodPost, s.ns, "checkout", "/responses", shopOrigin, answer(signed(key, exp, cxv1.AllSegment, "control"), "resp-00000009", 9))
		Expect(out.Code).To(Equal(http.StatusConflict))
		Expect(out.Error).To(ContainSubstring("experiment checkout is Succeeded"))
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v1/public/namespaces/%s/experiments/checkout", r.url, s.ns), nil)
		req.Header.Set("Origin", shopOrigin)
		res, err := httpClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		defer res.Body.Close()
		var settings map[string]any
		Expect(json.NewDecoder(res.Body).Decode(&settings)).To(Succeed())
		Expect(settings).To(HaveKeyWithValue("accepting", false))
		Expect(settings).To(HaveKeyWithValue("metric", "NPS"))
		Expect(tallyTotal(ctx, s.ns, "checkout")).To(BeZero())
	})

	It("limits requests per client address with 429 and Retry-After", func() {
		s := newShop(ctx)
		exp, key := s.feedbackExperiment(ctx, "checkout", cxv1.MetricCSAT, nil, browserOn)
		clk := clocktesting.NewFakePassiveClock(time.Now())
		limited, err := startReplica(ctx, collector.Options{RateLimit: -1, PublicRateLimit: 1, PublicRateBurst: 2, Clock: clk})
		Expect(err).NotTo(HaveOccurred())
		defer func() { Expect(limited.stop()).To(Succeed()) }()
		limited.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		value := signed(key, exp, cxv1.AllSegment, "control")
		post := func(respondent string) publicReply {
			return public(ctx, limited.url, http.MethodPost, s.ns, "checkout", "/responses", shopOrigin, answer(value, respondent, 5))
		}
		Expect(post("resp-0000000a").Code).To(Equal(http.StatusAccepted))
		Expect(post("resp-0000000b").Code).To(Equal(http.StatusAccepted))
		out := post("resp-0000000c")
		Expect(out.Code).To(Equal(http.StatusTooManyRequests))
		Expect(out.Header.Get("Retry-After")).To(Equal("1"))
		Expect(out.Error).To(ContainSubstring("too many requests from this client"))
		clk.SetTime(clk.Now().Add(time.Second))
		Expect(post("resp-0000000c").Code).To(Equal(http.StatusAccepted))
		expectTotal(ctx, s.ns, "checkout", 3)
	})
})
