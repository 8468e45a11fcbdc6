package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/jsonpath"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/collector"
	"github.com/rapport-dev/rapport/test/utils"
)

// The samples of config/samples/integrations are sent to a collector
// exactly as Argo Rollouts' Web metric provider and Flagger's webhooks send
// them (argo-rollouts metricproviders/webmetric/webmetric.go,
// utils/evaluate; flagger pkg/controller/webhook.go), over real HTTP, and
// their outcome is read the way those tools read it.

// readSample reads the objects of a sample file.
func readSample(name string) []*unstructured.Unstructured {
	data, err := os.ReadFile(filepath.Join(utils.RepoRoot(), "config", "samples", "integrations", name))
	Expect(err).NotTo(HaveOccurred())
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(string(data), "\n---\n") {
		u := &unstructured.Unstructured{}
		Expect(yaml.Unmarshal([]byte(doc), &u.Object)).To(Succeed())
		out = append(out, u)
	}
	return out
}

func sampleOf(objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind {
			return o
		}
	}
	Fail("no " + kind + " in the sample")
	return nil
}

// argoMetric is the part of an AnalysisTemplate metric the Web provider uses.
type argoMetric struct {
	SuccessCondition string `json:"successCondition"`
	FailureCondition string `json:"failureCondition"`
	Provider         struct {
		Web struct {
			URL     string `json:"url"`
			Headers []struct {
				Key   string `json:"key"`
				Value string `json:"value"`
			} `json:"headers"`
			JSONPath string `json:"jsonPath"`
		} `json:"web"`
	} `json:"provider"`
}

var argTag = regexp.MustCompile(`\{\{([^}]*)\}\}`)

// resolveArgs substitutes {{ args.NAME }} as Argo Rollouts does (tags trimmed).
func resolveArgs(s string, args map[string]string) string {
	return argTag.ReplaceAllStringFunc(s, func(tag string) string {
		name := strings.TrimSpace(tag[2 : len(tag)-2])
		v, ok := args[strings.TrimPrefix(name, "args.")]
		Expect(ok).To(BeTrue(), "unresolved %s", tag)
		return v
	})
}

// argoMeasure takes one measurement like the Web provider: GET with the
// template's headers, a non-2xx answer is an Error, else the jsonPath's first
// value is the result, judged by the success and failure conditions as in
// utils/evaluate: Successful, Failed, or Inconclusive when neither holds.
func argoMeasure(m argoMetric, args map[string]string) (phase string, value any) {
	req, err := http.NewRequest(http.MethodGet, resolveArgs(m.Provider.Web.URL, args), nil)
	Expect(err).NotTo(HaveOccurred())
	for _, h := range m.Provider.Web.Headers {
		req.Header.Set(h.Key, resolveArgs(h.Value, args))
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return "Error", string(body)
	}
	var data any
	Expect(json.Unmarshal(body, &data)).To(Succeed())
	jp := jsonpath.New("metrics")
	Expect(jp.Parse(m.Provider.Web.JSONPath)).To(Succeed())
	results, err := jp.FindResults(data)
	Expect(err).NotTo(HaveOccurred())
	Expect(results).NotTo(BeEmpty())
	Expect(results[0]).NotTo(BeEmpty())
	value = results[0][0].Interface()
	eval := func(cond string) bool {
		out, err := expr.Eval(cond, map[string]any{"result": value})
		Expect(err).NotTo(HaveOccurred())
		return out.(bool)
	}
	success, failure := eval(m.SuccessCondition), eval(m.FailureCondition)
	switch {
	case failure:
		return "Failed", value
	case success:
		return "Successful", value
	}
	return "Inconclusive", value
}

// flaggerHook is a webhook of a Canary's analysis.
type flaggerHook struct {
	Type     string            `json:"type"`
	URL      string            `json:"url"`
	Metadata map[string]string `json:"metadata"`
}

// flaggerCall POSTs Flagger's payload to hook like callWebhook does and
// reports what Flagger concludes: yes for a status code of at most 202.
func flaggerCall(hook flaggerHook, canary, canaryNS string) (yes bool, code int) {
	payload, err := json.Marshal(map[string]any{
		"name": canary, "namespace": canaryNS, "phase": "Progressing",
		"checksum": "6b5c7d9f8b", "metadata": hook.Metadata,
	})
	Expect(err).NotTo(HaveOccurred())
	req, err := http.NewRequest(http.MethodPost, hook.URL, bytes.NewReader(payload))
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode <= 202, resp.StatusCode
}

var _ = Describe("Customer-satisfaction gate", func() {
	var (
		ctx        context.Context
		ns         string
		token      string
		exp        *cxv1.CXExperiment
		writeState func(verdicts map[string]cxv1.Verdict, phase cxv1.ExperimentPhase)
	)

	BeforeEach(func() {
		ctx = context.Background()
		s := newShop(ctx)
		ns = s.ns
		token = "gate-" + s.token
		Expect(k8s.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "rapport-gate-token", Namespace: ns,
				Labels:      map[string]string{cxv1.LabelFeedbackToken: "true"},
				Annotations: map[string]string{collector.AnnotationTokenScopes: collector.ScopeVerdicts}},
			Data: map[string][]byte{cxv1.FeedbackTokenKey: []byte(token)},
		})).To(Succeed())
		exp = s.experiment(ctx, "checkout-redesign", cxv1.MetricCSAT, cxv1.PhaseProgressing, "enterprise", "new-customers")
		// writeState writes measurements as the controller does: verdicts of
		// one-page per segment.
		writeState = func(verdicts map[string]cxv1.Verdict, phase cxv1.ExperimentPhase) {
			Eventually(func() error {
				if err := k8s.Get(ctx, client.ObjectKeyFromObject(exp), exp); err != nil {
					return err
				}
				exp.Status.Phase, exp.Status.CurrentStep, exp.Status.StepWeight = phase, 1, 10
				exp.Status.Segments = nil
				for _, seg := range []string{"enterprise", "new-customers"} {
					v := cxv1.VariantStatus{Name: "one-page", State: cxv1.StateActive, Weight: 10, Responses: 640, Verdict: verdicts[seg],
						Score: "85.1", ScoreInterval: "[82.0, 88.2]", Difference: "-0.9", DifferenceInterval: "[-4.1, 2.3]"}
					if v.Verdict == cxv1.VerdictInferior {
						v.State, v.Weight = cxv1.StateRolledBack, 0
					}
					exp.Status.Segments = append(exp.Status.Segments, cxv1.SegmentStatus{Name: seg, Variants: []cxv1.VariantStatus{
						{Name: "control", State: cxv1.StateControl, Weight: 90, Responses: 5800, Score: "86.0", ScoreInterval: "[85.0, 87.0]"}, v,
					}})
				}
				return k8s.Status().Update(ctx, exp)
			}).Should(Succeed())
			// The replica answers from its cache: wait until it holds this status.
			Eventually(func(g Gomega) {
				seen := &cxv1.CXExperiment{}
				g.Expect(shared.client.Get(ctx, client.ObjectKeyFromObject(exp), seen)).To(Succeed())
				g.Expect(seen.Status.Phase).To(Equal(phase))
				g.Expect(seen.Status.Segments).To(HaveLen(2))
				for _, seg := range seen.Status.Segments { // every segment: two states may differ in one only
					g.Expect(seg.Variants[1].Verdict).To(Equal(verdicts[seg.Name]), seg.Name)
				}
				sec := &corev1.Secret{}
				g.Expect(shared.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "rapport-gate-token"}, sec)).To(Succeed())
			}).Should(Succeed())
		}
	})

	It("answers Argo Rollouts' Web metric provider: Successful on Promote, Inconclusive on Wait, Failed on Rollback", func() {
		tmpl := sampleOf(readSample("argo-rollouts-analysistemplate.yaml"), "AnalysisTemplate")
		metrics, _, _ := unstructured.NestedSlice(tmpl.Object, "spec", "metrics")
		Expect(metrics).To(HaveLen(1))
		raw, _ := json.Marshal(metrics[0])
		var m argoMetric
		Expect(json.Unmarshal(raw, &m)).To(Succeed())
		rollout := sampleOf(readSample("argo-rollouts-analysistemplate.yaml"), "Rollout")
		Expect(rollout.GetName()).NotTo(BeEmpty())
		args := map[string]string{"rapport-url": shared.url, "namespace": ns, "experiment": "checkout-redesign", "variant": "one-page", "token": token}

		writeState(map[string]cxv1.Verdict{"enterprise": cxv1.VerdictInconclusive, "new-customers": cxv1.VerdictNonInferior}, cxv1.PhaseProgressing)
		phase, value := argoMeasure(m, args)
		Expect(phase).To(Equal("Inconclusive"), "value %v", value)
		Expect(value).To(Equal("Wait"))

		writeState(map[string]cxv1.Verdict{"enterprise": cxv1.VerdictNonInferior, "new-customers": cxv1.VerdictNonInferior}, cxv1.PhaseProgressing)
		phase, _ = argoMeasure(m, args)
		Expect(phase).To(Equal("Successful"))

		writeState(map[string]cxv1.Verdict{"enterprise": cxv1.VerdictNonInferior, "new-customers": cxv1.VerdictInferior}, cxv1.PhaseProgressing)
		phase, _ = argoMeasure(m, args)
		Expect(phase).To(Equal("Failed"))

		By("errors are measurement errors, never successes")
		for name, change := range map[string]func(map[string]string){
			"a wrong token":      func(a map[string]string) { a["token"] = "nope" },
			"a variant it lacks": func(a map[string]string) { a["variant"] = "one-pag" },
			"an experiment it lacks": func(a map[string]string) {
				a["experiment"] = "nope"
			},
		} {
			a := map[string]string{}
			for k, v := range args {
				a[k] = v
			}
			change(a)
			phase, _ := argoMeasure(m, a)
			Expect(phase).To(Equal("Error"), name)
		}
	})

	It("answers Flagger's confirm-promotion and rollback webhooks with the status codes Flagger expects", func() {
		canary := sampleOf(readSample("flagger-canary.yaml"), "Canary")
		hooksRaw, _, _ := unstructured.NestedSlice(canary.Object, "spec", "analysis", "webhooks")
		raw, _ := json.Marshal(hooksRaw)
		var hooks []flaggerHook
		Expect(json.Unmarshal(raw, &hooks)).To(Succeed())
		byType := map[string]flaggerHook{}
		for _, h := range hooks {
			u, err := url.Parse(h.URL)
			Expect(err).NotTo(HaveOccurred())
			// The sample's Service and namespace are this test's replica and namespace.
			h.URL = shared.url + strings.Replace(u.Path, "/namespaces/shop/", "/namespaces/"+ns+"/", 1)
			h.Metadata["token"] = token
			byType[h.Type] = h
		}
		Expect(byType).To(HaveKey("confirm-promotion"))
		Expect(byType).To(HaveKey("rollback"))
		call := func(t string) bool {
			yes, _ := flaggerCall(byType[t], canary.GetName(), ns)
			return yes
		}

		writeState(map[string]cxv1.Verdict{"enterprise": cxv1.VerdictInsufficientData, "new-customers": cxv1.VerdictNonInferior}, cxv1.PhaseProgressing)
		Expect(call("confirm-promotion")).To(BeFalse(), "no promotion without a verdict")
		Expect(call("rollback")).To(BeFalse())

		writeState(map[string]cxv1.Verdict{"enterprise": cxv1.VerdictNonInferior, "new-customers": cxv1.VerdictNonInferior}, cxv1.PhaseProgressing)
		yes, code := flaggerCall(byType["confirm-promotion"], canary.GetName(), ns)
		Expect(yes).To(BeTrue())
		Expect(code).To(Equal(http.StatusOK))
		yes, code = flaggerCall(byType["rollback"], canary.GetName(), ns)
		Expect(yes).To(BeFalse())
		Expect(code).To(Equal(http.StatusConflict))

		writeState(map[string]cxv1.Verdict{"enterprise": cxv1.VerdictNonInferior, "new-customers": cxv1.VerdictInferior}, cxv1.PhaseProgressing)
		Expect(call("rollback")).To(BeTrue())
		Expect(call("confirm-promotion")).To(BeFalse())

		By("a token problem is never a yes")
		h := byType["rollback"]
		h.Metadata = map[string]string{"token": "nope", "variant": "one-page"}
		yes, code = flaggerCall(h, canary.GetName(), ns)
		Expect(yes).To(BeFalse())
		Expect(code).To(Equal(http.StatusUnauthorized))
	})

	It("serves the verdict as numbers to a bearer token of the namespace, and keeps verdicts-only tokens off the feedback API", func() {
		writeState(map[string]cxv1.Verdict{"enterprise": cxv1.VerdictNonInferior, "new-customers": cxv1.VerdictInconclusive}, cxv1.PhaseProgressing)
		req, err := http.NewRequest(http.MethodGet, shared.url+"/v1/namespaces/"+ns+"/experiments/checkout-redesign/verdict?segment=enterprise", nil)
		Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusOK))
		Expect(resp.Header.Get("Content-Type")).To(Equal("application/json"))
		var v collector.Verdict
		dec := json.NewDecoder(resp.Body)
		dec.DisallowUnknownFields()
		Expect(dec.Decode(&v)).To(Succeed())
		Expect(v.Decision).To(Equal(collector.GatePromote))
		Expect(v.Segments).To(HaveLen(1))
		one := v.Segments[0].Variants[1]
		Expect(one.Name).To(Equal("one-page"))
		Expect(*one.Score).To(Equal(85.1))
		Expect(*one.DifferenceInterval).To(Equal(collector.Interval{Lower: -4.1, Upper: 2.3}))

		r := do(ctx, request{url: shared.url, ns: ns, experiment: "checkout-redesign", token: token,
			body: batchBody(response{Variant: "one-page", Segment: "enterprise", Score: 5})})
		Expect(r.Code).To(Equal(http.StatusForbidden))
		Expect(r.Error).To(ContainSubstring(collector.AnnotationTokenScopes))
	})
})
