package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/assignment"
	"github.com/rapport-dev/rapport/internal/feedback"
	"github.com/rapport-dev/rapport/internal/metrics"
)

// Fixtures shared by the webhook, public endpoint and browser specs.

// feedbackWait bounds waits on real latency: a replica's cache catching up,
// the collector's status writes (every 3 s), a loaded machine.
const feedbackWait = time.Minute

// feedbackExperiment creates an experiment whose answers may carry a signed
// assignment, gives it its key as the controller would, and sets its status.
// change edits the spec before it is created.
func (s *shop) feedbackExperiment(ctx context.Context, name string, metric cxv1.SatisfactionMetricKind, segments []string, change func(*cxv1.CXExperiment)) (*cxv1.CXExperiment, []byte) {
	exp := &cxv1.CXExperiment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
		Spec: cxv1.CXExperimentSpec{
			Touchpoint: "checkout",
			Variants: []cxv1.Variant{
				{Name: "control", Control: true, Service: &cxv1.ServiceRef{Name: "checkout-v1", Port: 8080}},
				{Name: "one-page", Service: &cxv1.ServiceRef{Name: "checkout-v2", Port: 8080}},
			},
			Segments: segments,
			Traffic: cxv1.Traffic{GatewayAPI: &cxv1.GatewayAPITraffic{HTTPRoute: "checkout",
				AssignmentCookie: &cxv1.AssignmentCookie{Secure: ptr(false)}}},
			Steps: []cxv1.Step{{Weight: 10, MinDuration: metav1.Duration{Duration: time.Minute}}},
			Satisfaction: cxv1.Satisfaction{
				Metric: metric, MaxDrop: "3", Confidence: "95", MinResponses: 100,
				Source:   cxv1.SatisfactionSource{Collector: &cxv1.CollectorSource{}},
				Interval: metav1.Duration{Duration: time.Second},
			},
		},
	}
	if change != nil {
		change(exp)
	}
	Expect(k8s.Create(ctx, exp)).To(Succeed())
	setStatus(ctx, exp, cxv1.PhaseProgressing, 1)
	key, err := (&assignment.Keys{Reader: k8s, Writer: k8s}).Ensure(ctx, exp)
	Expect(err).NotTo(HaveOccurred())
	return exp, key
}

func ptr[T any](v T) *T { return &v }

// signed is the assignment value the gateway's cookie would carry.
func signed(key []byte, exp *cxv1.CXExperiment, segment, variant string) string {
	return assignment.Sign(key, assignment.Assignment{Namespace: exp.Namespace, Experiment: exp.Name, Run: exp.Status.Run, Segment: segment, Variant: variant})
}

// fixture reads a provider fixture of package feedback with the assignment filled in.
func fixture(name, assignmentValue string) []byte {
	b, err := os.ReadFile(filepath.Join("..", "..", "feedback", "testdata", name))
	Expect(err).NotTo(HaveOccurred())
	return []byte(strings.ReplaceAll(string(b), "{{ASSIGNMENT}}", assignmentValue))
}

// source creates a FeedbackSource and its Secret.
func (s *shop) source(ctx context.Context, name string, provider cxv1.FeedbackProvider, generic *cxv1.GenericWebhook, mapping *cxv1.FeedbackMapping, data map[string][]byte) *cxv1.FeedbackSource {
	Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-secret", Namespace: s.ns}, Data: data})).To(Succeed())
	src := &cxv1.FeedbackSource{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
		Spec: cxv1.FeedbackSourceSpec{Provider: provider, SecretRef: cxv1.LocalObjectRef{Name: name + "-secret"},
			Generic: generic, Mapping: mapping},
	}
	Expect(k8s.Create(ctx, src)).To(Succeed())
	return src
}

// waitSource waits until a replica's cache holds the source.
func (r *replica) waitSource(ctx context.Context, src *cxv1.FeedbackSource) {
	Eventually(func() error {
		return r.client.Get(ctx, client.ObjectKeyFromObject(src), &cxv1.FeedbackSource{})
	}).WithTimeout(feedbackWait).Should(Succeed())
}

// providerSecrets is the data of a Secret that serves every provider.
func providerSecrets() map[string][]byte {
	return map[string][]byte{
		feedback.KeyTypeformSecret: []byte("typeform-secret"), feedback.KeySurveyMonkeyAPIKey: []byte("sm-key"),
		feedback.KeySurveyMonkeyAPISecret: []byte("sm-secret"), feedback.KeySurveyMonkeyToken: []byte("sm-token"),
		feedback.KeySurvicateSecret: []byte("survicate-secret"), feedback.KeyGenericToken: []byte("generic-token"),
		feedback.KeyGenericHMAC: []byte("generic-key"),
	}
}

// webhookReply is the collector's answer to a webhook.
type webhookReply struct {
	Code       int
	Accepted   int    `json:"accepted"`
	Duplicates int    `json:"duplicates"`
	Ignored    string `json:"ignored"`
	Error      string `json:"error"`
}

// postWebhook posts body to a source's webhook with the given headers.
func postWebhook(ctx context.Context, url, ns, source string, body []byte, headers map[string]string) webhookReply {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/v1/namespaces/%s/sources/%s/webhook", url, ns, source), bytes.NewReader(body))
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := httpClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	Expect(err).NotTo(HaveOccurred())
	out := webhookReply{Code: res.StatusCode}
	Expect(json.Unmarshal(data, &out)).To(Succeed(), "the answer is JSON: %s", data)
	return out
}

// signedWebhook posts body signed as src's provider would sign it.
func signedWebhook(ctx context.Context, url string, src *cxv1.FeedbackSource, data map[string][]byte, body []byte) webhookReply {
	name, value := feedback.Sign(src.Spec.Provider, src.Spec.Generic, data, body)
	return postWebhook(ctx, url, src.Namespace, src.Name, body, map[string]string{name: value})
}

// rejections reads rapport_feedback_rejections_total for a source and reason.
func rejections(ns, source, reason string) float64 {
	var m dto.Metric
	Expect(metrics.FeedbackRejections.WithLabelValues(ns, source, reason).(prometheus.Metric).Write(&m)).To(Succeed())
	return m.Counter.GetValue()
}

// tallyTotal is the experiment's tally total, 0 without a tally.
func tallyTotal(ctx context.Context, ns, name string) int64 {
	t, err := getTally(ctx, ns, name)
	if err != nil {
		Expect(client.IgnoreNotFound(err)).To(Succeed())
		return 0
	}
	return t.Spec.Total
}
