package controller

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/routing"
	"github.com/rapport-dev/rapport/internal/routing/gatewayapi"
)

// shop is the fixture of one test: a namespace with checkout Services, an
// HTTPRoute sending /checkout to the control, two segments and a feedback token.
type shop struct {
	ns    string
	token string
}

func newShop() *shop {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "shop-"}}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	s := &shop{ns: ns.Name}
	for _, svc := range []string{"checkout-v1", "checkout-v2", "checkout-v3"} {
		s.service(svc)
	}
	s.route("checkout", 1)
	s.segment("enterprise", cxv1.SegmentMatch{Headers: []cxv1.HeaderMatch{{Name: "x-customer-tier", Value: "enterprise"}}})
	s.segment("new-customers", cxv1.SegmentMatch{Cookies: []cxv1.CookieMatch{{Name: "lifecycle", Value: "new"}}})
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	s.token = hex.EncodeToString(b)
	Expect(k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "feedback-token", Namespace: s.ns, Labels: map[string]string{cxv1.LabelFeedbackToken: "true"}},
		Data:       map[string][]byte{cxv1.FeedbackTokenKey: []byte(s.token)},
	})).To(Succeed())
	return s
}

func (s *shop) service(name string) {
	Expect(k8s.Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(8080)}},
			Selector: map[string]string{"app": name}},
	})).To(Succeed())
}

// route creates an HTTPRoute with `rules` rules sending /checkout (and
// /checkout/<i>) to checkout-v1, plus a rule sending /static elsewhere.
func (s *shop) route(name string, rules int) *gwv1.HTTPRoute {
	r := &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns, Labels: map[string]string{"owner": "shop-team"}},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "public-gateway", SectionName: ptr(gwv1.SectionName("https"))}}},
			Hostnames:       []gwv1.Hostname{"shop.example.com"},
		},
	}
	for i := range rules {
		path := "/checkout"
		if i > 0 {
			path = fmt.Sprintf("/checkout-%d", i)
		}
		r.Spec.Rules = append(r.Spec.Rules, gwv1.HTTPRouteRule{
			Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr(gwv1.PathMatchPathPrefix), Value: ptr(path)}}},
			Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterRequestHeaderModifier,
				RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Add: []gwv1.HTTPHeader{{Name: "x-shop", Value: "1"}}}}},
			BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{
				Name: "checkout-v1", Port: ptr(gwv1.PortNumber(8080))}}}},
		})
	}
	r.Spec.Rules = append(r.Spec.Rules, gwv1.HTTPRouteRule{
		Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr(gwv1.PathMatchPathPrefix), Value: ptr("/static")}}},
		BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{
			Name: "static", Port: ptr(gwv1.PortNumber(80))}}}},
	})
	Expect(k8s.Create(ctx, r)).To(Succeed())
	return r
}

// addControlRules adds n rules sending /checkout-extra-<i> to the control
// Service, as a route owner might while an experiment runs.
func (s *shop) addControlRules(route string, n int) {
	Eventually(func() error {
		r, err := s.getRoute(route)
		if err != nil {
			return err
		}
		for i := range n {
			rule := *r.Spec.Rules[0].DeepCopy()
			rule.Matches = []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr(gwv1.PathMatchPathPrefix), Value: ptr(fmt.Sprintf("/checkout-extra-%d", i))}}}
			r.Spec.Rules = append(r.Spec.Rules, rule)
		}
		return k8s.Update(ctx, r)
	}).Should(Succeed())
}

func (s *shop) segment(name string, m cxv1.SegmentMatch) {
	Expect(k8s.Create(ctx, &cxv1.CustomerSegment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
		Spec:       cxv1.CustomerSegmentSpec{Description: name, Match: m},
	})).To(Succeed())
}

// experiment returns a fast experiment (steps of 1s) on the checkout route.
func (s *shop) experiment(name string, segments ...string) *cxv1.CXExperiment {
	return &cxv1.CXExperiment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
		Spec: cxv1.CXExperimentSpec{
			Hypothesis: "One-page checkout keeps customers as satisfied",
			Touchpoint: "checkout",
			Variants: []cxv1.Variant{
				{Name: "control", Control: true, Service: &cxv1.ServiceRef{Name: "checkout-v1", Port: 8080}},
				{Name: "one-page", Service: &cxv1.ServiceRef{Name: "checkout-v2", Port: 8080}},
			},
			Segments: segments,
			Traffic:  cxv1.Traffic{GatewayAPI: &cxv1.GatewayAPITraffic{HTTPRoute: "checkout"}},
			Steps: []cxv1.Step{
				{Weight: 10, MinDuration: metav1.Duration{Duration: time.Second}},
				{Weight: 30, MinDuration: metav1.Duration{Duration: time.Second}},
				{Weight: 50, MinDuration: metav1.Duration{Duration: time.Second}},
			},
			Promotion:      cxv1.PromotionAutomatic,
			OnInconclusive: cxv1.InconclusiveRollback,
			Satisfaction: cxv1.Satisfaction{
				Metric: cxv1.MetricCSAT, MaxDrop: "3", Confidence: "95", MinResponses: 100,
				Source:   cxv1.SatisfactionSource{Collector: &cxv1.CollectorSource{}},
				Interval: metav1.Duration{Duration: time.Second},
			},
		},
	}
}

func (s *shop) create(exp *cxv1.CXExperiment) *cxv1.CXExperiment {
	Expect(k8s.Create(ctx, exp)).To(Succeed())
	return exp
}

// start creates the experiment and waits until it runs (the collector
// accepts feedback from then on).
func (s *shop) start(exp *cxv1.CXExperiment) *cxv1.CXExperiment {
	s.create(exp)
	Eventually(s.phase(exp.Name)).Should(Equal(cxv1.PhaseProgressing))
	return exp
}

func (s *shop) get(name string) *cxv1.CXExperiment {
	exp := &cxv1.CXExperiment{}
	Expect(k8s.Get(ctx, types.NamespacedName{Namespace: s.ns, Name: name}, exp)).To(Succeed())
	return exp
}

func (s *shop) getRoute(name string) (*gwv1.HTTPRoute, error) {
	r := &gwv1.HTTPRoute{}
	err := k8s.Get(ctx, types.NamespacedName{Namespace: s.ns, Name: name}, r)
	return r, err
}

// phase polls the experiment's phase.
func (s *shop) phase(name string) func() cxv1.ExperimentPhase {
	return func() cxv1.ExperimentPhase {
		exp := &cxv1.CXExperiment{}
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: s.ns, Name: name}, exp); err != nil {
			return ""
		}
		return exp.Status.Phase
	}
}

// weights reads the split Rapport applied to the routes.
func (s *shop) weights(name string) map[string]map[string]int32 {
	exp := s.get(name)
	r, err := routing.New(exp, routing.Deps{Client: k8s, Scheme: scheme, GatewayAPI: true})
	Expect(err).NotTo(HaveOccurred())
	w, err := r.Weights(ctx, exp)
	Expect(err).NotTo(HaveOccurred())
	return w
}

// segmentWeights returns a function reading one segment's applied split,
// for Eventually and Consistently.
func (s *shop) segmentWeights(name, segment string) func() map[string]int32 {
	return func() map[string]int32 { return s.weights(name)[segment] }
}

type response struct {
	Variant string `json:"variant"`
	Segment string `json:"segment,omitempty"`
	Score   int    `json:"score"`
}

// scores returns n responses with a share `satisfied` of 5s and the rest 2s (CSAT 1..5).
func scores(variant, segment string, n int, satisfiedPct int) []response {
	out := make([]response, n)
	for i := range out {
		score := 2
		if i*100 < satisfiedPct*n {
			score = 5
		}
		out[i] = response{Variant: variant, Segment: segment, Score: score}
	}
	return out
}

// post sends responses to the collector over HTTP in batches of 500 and
// returns the last status code. Like customers, who answer about traffic
// they were served, it first waits until the route carries the weights of
// every segment's current epoch (appliedAt); before that, answers without
// an epoch count in epoch 0 (see postNow).
func (s *shop) post(experiment string, rs []response) int {
	s.awaitApplied(experiment)
	return s.postNow(experiment, rs)
}

// awaitApplied waits until status says the route carries the weights of
// every segment's current epoch (appliedAt), or the experiment is no longer
// moving traffic.
func (s *shop) awaitApplied(experiment string) {
	GinkgoHelper()
	Eventually(func() bool {
		exp := s.get(experiment)
		if p := exp.Status.Phase; p != cxv1.PhaseProgressing && p != cxv1.PhasePaused {
			return true
		}
		for _, seg := range exp.Status.Segments {
			if n := len(seg.Epochs); n > 0 && seg.Epochs[n-1].AppliedAt == nil {
				return false
			}
		}
		return true
	}).Should(BeTrue(), "the route of %s takes the current weights", experiment)
}

// postNow posts like post, without waiting for the route.
func (s *shop) postNow(experiment string, rs []response) int {
	code := 0
	for len(rs) > 0 {
		n := min(len(rs), 500)
		code = s.postBatch(experiment, rs[:n], "")
		Expect(code).To(Equal(http.StatusAccepted))
		rs = rs[n:]
	}
	return code
}

func (s *shop) postBatch(experiment string, rs []response, idempotencyKey string) int {
	body, err := json.Marshal(map[string]any{"responses": rs})
	Expect(err).NotTo(HaveOccurred())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		fmt.Sprintf("%s/v1/namespaces/%s/experiments/%s/responses", collectorURL, s.ns, experiment), bytes.NewReader(body))
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		fmt.Fprintf(GinkgoWriter, "collector answered %d: %s\n", resp.StatusCode, msg)
	}
	return resp.StatusCode
}

func ping(base string) error {
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz: %d", resp.StatusCode)
	}
	return nil
}

// routeJSON is the spec of a route as JSON, to compare routes byte for byte.
func routeJSON(r *gwv1.HTTPRoute) string {
	b, err := json.Marshal(r.Spec)
	Expect(err).NotTo(HaveOccurred())
	return string(b)
}

// condition returns the experiment's condition of a type.
func condition(exp *cxv1.CXExperiment, t string) *metav1.Condition {
	for i := range exp.Status.Conditions {
		if exp.Status.Conditions[i].Type == t {
			return &exp.Status.Conditions[i]
		}
	}
	return nil
}

// update changes an experiment, retrying on conflicts.
func (s *shop) update(name string, change func(*cxv1.CXExperiment)) {
	Eventually(func() error {
		exp := s.get(name)
		change(exp)
		return k8s.Update(ctx, exp)
	}).Should(Succeed())
}

// annotate asks for a manual action (what kubectl cx does).
func (s *shop) annotate(name, key string) {
	s.update(name, func(exp *cxv1.CXExperiment) {
		if exp.Annotations == nil {
			exp.Annotations = map[string]string{}
		}
		exp.Annotations[key] = time.Now().Format(time.RFC3339Nano)
	})
}

// waiting polls status.waiting: why the running experiment stays at its step.
func (s *shop) waiting(name string) func() cxv1.WaitingReason {
	return func() cxv1.WaitingReason { return s.get(name).Status.Waiting }
}

// conditionReason polls the reason of a condition ("" when absent).
func (s *shop) conditionReason(name, t string) func() string {
	return func() string {
		if c := condition(s.get(name), t); c != nil {
			return c.Reason
		}
		return ""
	}
}

// events lists the reasons of the experiment's events, oldest first.
func (s *shop) events(name string) func() []string {
	return func() []string {
		var list eventsv1.EventList
		Expect(k8s.List(ctx, &list, client.InNamespace(s.ns))).To(Succeed())
		sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].CreationTimestamp.Before(&list.Items[j].CreationTimestamp) })
		var out []string
		for _, e := range list.Items {
			if e.Regarding.Name == name {
				out = append(out, e.Reason)
			}
		}
		return out
	}
}

// eventNotes returns the notes of the experiment's events with a reason.
func (s *shop) eventNotes(name, reason string) []string {
	var list eventsv1.EventList
	Expect(k8s.List(ctx, &list, client.InNamespace(s.ns))).To(Succeed())
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Reason == reason {
			out = append(out, e.Note)
		}
	}
	return out
}

func (s *shop) deployment(name string, replicas int32) {
	labels := map[string]string{"app": name}
	Expect(k8s.Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "shop/" + name}}},
			},
		},
	})).To(Succeed())
}

func (s *shop) replicas(name string) func() int32 {
	return func() int32 {
		d := &appsv1.Deployment{}
		Expect(k8s.Get(ctx, types.NamespacedName{Namespace: s.ns, Name: name}, d)).To(Succeed())
		return *d.Spec.Replicas
	}
}

// childRoute polls whether the experiment's child route exists.
func (s *shop) childExists(name string) func() bool {
	return func() bool {
		_, err := s.getRoute(gatewayapi.ChildRouteName(name))
		return err == nil
	}
}

// parentJSON polls the user's route spec as JSON.
func (s *shop) parentJSON(name string) func() string {
	return func() string {
		r, err := s.getRoute(name)
		Expect(err).NotTo(HaveOccurred())
		return routeJSON(r)
	}
}

// deleted polls whether the experiment is gone.
func (s *shop) deleted(name string) func() bool {
	return func() bool {
		err := k8s.Get(ctx, types.NamespacedName{Namespace: s.ns, Name: name}, &cxv1.CXExperiment{})
		return apierrors.IsNotFound(err)
	}
}

func keyOf(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

func metaOf(ns, name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }

// firstStepControl is how many control responses arrive with n of the
// variant's at the fixture's first step (10% of each segment to the
// variant, 90% to the control). Answers in other proportions are a
// sample-ratio mismatch, which holds the segment at its step.
func firstStepControl(n int) int { return 9 * n }

// awaitManualPromotion starts experiment name in enterprise with manual
// promotion, posts answers that clear the variant, and waits until the run
// awaits the promote action.
func (s *shop) awaitManualPromotion(name string) {
	GinkgoHelper()
	exp := s.experiment(name, "enterprise")
	exp.Spec.Promotion = cxv1.PromotionManual
	s.start(exp)
	s.post(name, scores("control", "enterprise", firstStepControl(1500), 86))
	s.post(name, scores("one-page", "enterprise", 1500, 87))
	Eventually(s.waiting(name)).Should(Equal(cxv1.WaitingPromotion))
}

// createInvalidSpec stores experiment name with a maxDrop of 75, which the
// controller refuses: the CRD's rule is relaxed first, as on an API server
// whose CRD is older than the controller.
func (s *shop) createInvalidSpec(name string) {
	GinkgoHelper()
	relaxMaxDropRule()
	exp := s.experiment(name, "enterprise")
	exp.Spec.Satisfaction.MaxDrop = "75"
	Eventually(func() error { return k8s.Create(ctx, exp.DeepCopy()) }).Should(Succeed())
}
