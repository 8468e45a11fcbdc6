package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/routing/gatewayapi"
	"github.com/rapport-dev/rapport/test/utils/netns"
	"github.com/rapport-dev/rapport/test/utils/wire"
)

// The shop's backends, by Service name: each listens on netns.Host at its
// port and answers with its name.
var backendPorts = map[string]int32{
	"storefront":  9000,
	"checkout-v1": 9001, // the control
	"checkout-v2": 9002,
	"checkout-v3": 9003,
}

// Variants of the experiments, by Service.
var variantService = map[string]string{"control": "checkout-v1", "one-page": "checkout-v2", "express": "checkout-v3"}

// z is how many standard deviations a share may stray from its weight (a
// correct split fails once in about 1.7 million checks).
const z = 5

// Requests per split check: a first sample waits for the proxy to apply
// the change, then an independent one is checked.
const (
	waitSample  = 400
	checkSample = 1000
)

// shop is a namespace with Rapport's usual setup: Services checkout-v1..v3
// and storefront with their endpoints, the parent HTTPRoute "checkout"
// (/checkout -> checkout-v1, / -> storefront) on the suite's Gateway, three
// segments (a header, a cookie and a query parameter) and a feedback token.
type shop struct {
	ns, host, token string
	// route is the parent route as created.
	route *gwv1.HTTPRoute
}

// Segments of every shop, and the marks of their customers.
var segments = map[string]cxv1.SegmentMatch{
	"enterprise":    {Headers: []cxv1.HeaderMatch{{Name: "x-customer-tier", Value: "enterprise"}}},
	"new-customers": {Cookies: []cxv1.CookieMatch{{Name: "lifecycle", Value: "new"}}},
	"spring-sale":   {QueryParams: []cxv1.QueryParamMatch{{Name: "campaign", Value: "spring"}}},
}

func newShop() *shop {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	s := &shop{ns: ns.Name, host: ns.Name + ".shop.test"}
	for _, name := range slices.Sorted(maps.Keys(backendPorts)) {
		Expect(k8s.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(backendPorts[name])}}}})).To(Succeed())
		Expect(wire.PublishEndpoints(ctx, k8s, s.ns, name, backendPorts[name], netns.Host)).To(Succeed())
	}
	s.route = &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: s.ns},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{gateway.ParentRef()}},
			Hostnames:       []gwv1.Hostname{gwv1.Hostname(s.host)},
			Rules: []gwv1.HTTPRouteRule{
				{
					Matches:     []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr(gwv1.PathMatchPathPrefix), Value: ptr("/checkout")}}},
					BackendRefs: []gwv1.HTTPBackendRef{backendRef("checkout-v1")},
				},
				{
					Matches:     []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr(gwv1.PathMatchPathPrefix), Value: ptr("/")}}},
					BackendRefs: []gwv1.HTTPBackendRef{backendRef("storefront")},
				},
			},
		},
	}
	Expect(k8s.Create(ctx, s.route)).To(Succeed())
	for name, m := range segments {
		Expect(k8s.Create(ctx, &cxv1.CustomerSegment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
			Spec: cxv1.CustomerSegmentSpec{Match: m}})).To(Succeed())
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	s.token = hex.EncodeToString(b)
	Expect(k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "feedback-token", Namespace: s.ns, Labels: map[string]string{cxv1.LabelFeedbackToken: "true"}},
		Data:       map[string][]byte{"token": []byte(s.token)},
	})).To(Succeed())
	// The proxy serves the route before any experiment starts.
	expectSplit(s.req(""), map[string]float64{"checkout-v1": 1})
	return s
}

func backendRef(service string) gwv1.HTTPBackendRef {
	return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{
		Name: gwv1.ObjectName(service), Port: ptr(gwv1.PortNumber(8080)),
	}}}
}

func ptr[T any](v T) *T { return &v }

// req is a customer of a segment ("" for nobody in particular) asking for
// the checkout.
func (s *shop) req(segment string) wire.Request {
	r := wire.Request{Host: s.host, Path: "/checkout/cart"}
	switch segment {
	case "":
	case "enterprise":
		r.Header = map[string]string{"X-Customer-Tier": "enterprise"} // header names are case-insensitive
	case "new-customers":
		r.Cookies = map[string]string{"session": "a1b2", "lifecycle": "new", "theme": "dark"}
	case "spring-sale":
		r.Query = map[string]string{"campaign": "spring", "ref": "mail"}
	default:
		Fail("no such segment " + segment)
	}
	return r
}

// outsiders are customers of no segment, some close to one.
func (s *shop) outsiders() []wire.Request {
	base := wire.Request{Host: s.host, Path: "/checkout"}
	with := func(f func(r *wire.Request)) wire.Request { r := base; f(&r); return r }
	return []wire.Request{
		base,
		with(func(r *wire.Request) { r.Header = map[string]string{"x-customer-tier": "smb"} }),
		with(func(r *wire.Request) { r.Header = map[string]string{"x-customer-tier": "enterprise-trial"} }),
		with(func(r *wire.Request) { r.Cookies = map[string]string{"lifecycle": "newish"} }),
		with(func(r *wire.Request) { r.Cookies = map[string]string{"xlifecycle": "new"} }),
		with(func(r *wire.Request) { r.Header = map[string]string{"x-lifecycle": "new"} }),
		with(func(r *wire.Request) { r.Query = map[string]string{"campaign": "springtime"} }),
		with(func(r *wire.Request) { r.Query = map[string]string{"Campaign": "spring"} }),
	}
}

// storefront is a customer of the parent route's other rule.
func (s *shop) storefront() wire.Request { return wire.Request{Host: s.host, Path: "/products/42"} }

// experiment returns an experiment on the shop's route: the control and
// variants (by name: one-page, express), the segments, one step per
// weight, each held for an hour until the test advances it.
func (s *shop) experiment(name string, variants []string, segs []string, weights ...int32) *cxv1.CXExperiment {
	vs := []cxv1.Variant{{Name: "control", Control: true, Service: &cxv1.ServiceRef{Name: variantService["control"], Port: 8080}}}
	for _, v := range variants {
		vs = append(vs, cxv1.Variant{Name: v, Service: &cxv1.ServiceRef{Name: variantService[v], Port: 8080}})
	}
	var steps []cxv1.Step
	for _, w := range weights {
		steps = append(steps, cxv1.Step{Weight: w, MinDuration: metav1.Duration{Duration: time.Hour}})
	}
	return &cxv1.CXExperiment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
		Spec: cxv1.CXExperimentSpec{
			Variants:       vs,
			Segments:       segs,
			Traffic:        cxv1.Traffic{GatewayAPI: &cxv1.GatewayAPITraffic{HTTPRoute: s.route.Name}},
			Steps:          steps,
			Promotion:      cxv1.PromotionManual,
			OnInconclusive: cxv1.InconclusiveHold,
			Satisfaction: cxv1.Satisfaction{Metric: cxv1.MetricCSAT, MaxDrop: "20", Confidence: "95", MinResponses: 50,
				Source: cxv1.SatisfactionSource{Collector: &cxv1.CollectorSource{}}, Interval: metav1.Duration{Duration: 30 * time.Second}},
		},
	}
}

// start creates the experiment, deletes it (and waits for it to go) when
// the spec ends, and waits until it runs.
func start(exp *cxv1.CXExperiment) {
	GinkgoHelper()
	Expect(k8s.Create(ctx, exp)).To(Succeed())
	DeferCleanup(func() { deleteExperiment(exp) })
	Eventually(func() cxv1.ExperimentPhase { return get(exp).Status.Phase }).Should(Equal(cxv1.PhaseProgressing), describe(exp))
}

// deleteExperiment deletes it and waits until its finalizer is done.
func deleteExperiment(exp *cxv1.CXExperiment) {
	GinkgoHelper()
	Expect(client.IgnoreNotFound(k8s.Delete(ctx, exp))).To(Succeed())
	Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(exp), &cxv1.CXExperiment{}))
	}).Should(BeTrue(), "the experiment is finalized (is the manager running?)")
}

func get(exp *cxv1.CXExperiment) *cxv1.CXExperiment {
	GinkgoHelper()
	out := &cxv1.CXExperiment{}
	Expect(k8s.Get(ctx, client.ObjectKeyFromObject(exp), out)).To(Succeed())
	return out
}

// describe renders an experiment's status for failure messages.
func describe(exp *cxv1.CXExperiment) func() string {
	return func() string {
		out := &cxv1.CXExperiment{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(exp), out); err != nil {
			return err.Error()
		}
		b, _ := json.MarshalIndent(out.Status, "", "  ")
		return "experiment status:\n" + string(b)
	}
}

// shares is the expected share of each backend at a step weight: weight%
// to each non-control variant, the rest to the control.
func shares(weight int32, variants ...string) map[string]float64 {
	out := map[string]float64{variantService["control"]: 1 - float64(weight)*float64(len(variants))/100}
	for _, v := range variants {
		out[variantService[v]] = float64(weight) / 100
	}
	return out
}

// expectSplit waits until the proxy serves r by the shares (a sample of
// waitSample requests within tolerance; the steps' weights are chosen so that
// the previous split cannot pass), then checks an independent sample of
// checkSample requests: within z binomial standard deviations of each share,
// nothing on any other backend, no errors.
func expectSplit(r wire.Request, want map[string]float64) wire.Split {
	GinkgoHelper()
	var last wire.Split
	Eventually(func(g Gomega) {
		last = customers.Split(ctx, r, waitSample)
		checkSplit(g, last, want)
	}).WithTimeout(60*time.Second).WithPolling(10*time.Millisecond).Should(Succeed(), "the proxy applies the split to %s; last sample %s", r, func() string { return last.String() })
	s := customers.Split(ctx, r, checkSample)
	checkSplit(Default, s, want)
	GinkgoWriter.Printf("%s: %s\n", r, s)
	return s
}

func checkSplit(g Gomega, s wire.Split, want map[string]float64) {
	g.Expect(s.Errors).To(BeEmpty(), "every request answered by a backend: %s", s)
	for backend, p := range want {
		g.Expect(s.Share(backend)).To(BeNumerically("~", p, wire.Tolerance(s.N, p, z)), "share of %s (want %.2f): %s", backend, p, s)
	}
	for backend, n := range s.Served {
		if _, ok := want[backend]; !ok {
			g.Expect(n).To(BeZero(), "requests served by %s, which should get none: %s", backend, s)
		}
	}
}

// expectAllOn checks that every one of the requests is served by backend.
func expectAllOn(backend string, rs ...wire.Request) {
	GinkgoHelper()
	for _, r := range rs {
		expectSplit(r, map[string]float64{backend: 1})
	}
}

// answer posts n answers of a segment's customers about a variant to the
// collector, the first satisfied of them satisfied (score 5), the rest not
// (score 1), and expects them accepted.
func (s *shop) answer(exp *cxv1.CXExperiment, segment, variant string, n, satisfied int) {
	GinkgoHelper()
	type response struct {
		Variant string `json:"variant"`
		Segment string `json:"segment,omitempty"`
		Score   int    `json:"score"`
	}
	rs := make([]response, n)
	for i := range rs {
		rs[i] = response{Variant: variant, Segment: segment, Score: 1}
		if i < satisfied {
			rs[i].Score = 5
		}
	}
	body, _ := json.Marshal(map[string]any{"responses": rs})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		fmt.Sprintf("%s/v1/namespaces/%s/experiments/%s/responses", mgr.CollectorURL, s.ns, exp.Name), bytes.NewReader(body))
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	Expect(resp.StatusCode).To(Equal(http.StatusAccepted), "the collector accepts the answers")
}

// satisfied posts equally good answers for every variant in every segment
// of the experiment, enough for a NonInferior verdict: 10 answers per
// percent of the segment's traffic the variant gets now, so that the
// answers arrive in the shares the weights predict (other shares are a
// sample-ratio mismatch, which holds the segment at its step).
func (s *shop) satisfied(exp *cxv1.CXExperiment) {
	GinkgoHelper()
	for _, seg := range get(exp).Status.Segments {
		for _, v := range seg.Variants {
			if v.Weight > 0 {
				n := 10 * int(v.Weight)
				s.answer(exp, seg.Name, v.Name, n, n*9/10)
			}
		}
	}
}

// advance moves the experiment to its next step: it posts good answers,
// waits for every verdict to be NonInferior and ends the current step's
// hold (minDuration 0s).
func (s *shop) advance(exp *cxv1.CXExperiment) {
	GinkgoHelper()
	s.satisfied(exp)
	cur := get(exp)
	step := cur.Status.CurrentStep
	Eventually(func(g Gomega) {
		for _, seg := range get(exp).Status.Segments {
			for _, v := range seg.Variants[1:] {
				if v.State == cxv1.StateActive {
					g.Expect(v.Verdict).To(Equal(cxv1.VerdictNonInferior), "segment %s variant %s", seg.Name, v.Name)
				}
			}
		}
	}).Should(Succeed(), describe(exp))
	Eventually(func() error {
		cur := get(exp)
		cur.Spec.Steps[step-1].MinDuration = metav1.Duration{}
		return k8s.Update(ctx, cur)
	}).Should(Succeed())
	Eventually(func() int32 { return get(exp).Status.CurrentStep }).Should(Equal(step+1), describe(exp))
}

// childRoute is the experiment's child HTTPRoute.
func childRoute(exp *cxv1.CXExperiment) types.NamespacedName {
	return types.NamespacedName{Namespace: exp.Namespace, Name: gatewayapi.ChildRouteName(exp.Name)}
}
