package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/test/utils/wire"
)

var _ = Describe("Routing modes", func() {
	It("without segments, splits all the control's traffic of the parent route and restores the route exactly", func() {
		s := newShop()
		exp := s.experiment("checkout-redesign", []string{"one-page"}, nil, 30)
		start(exp)
		// Everyone, segment marks or not: the parent rule itself is split.
		expectSplit(s.req(""), shares(30, "one-page"))
		expectSplit(s.req("enterprise"), shares(30, "one-page"))
		expectAllOn("storefront", s.storefront())
		route := &gwv1.HTTPRoute{}
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(s.route), route)).To(Succeed())
		Expect(route.Spec.Rules[1]).To(Equal(s.route.Spec.Rules[1]), "the rule to the storefront is untouched")

		deleteExperiment(exp)
		s.expectRouteAsCreated()
		expectAllOn("checkout-v1", s.req(""), s.req("enterprise"))
	})

	It("with replicas, shares one Service's pods by weight and restores the replica counts", func() {
		s := newShop()
		host := "pods." + s.host
		Expect(k8s.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: s.ns},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "checkout"},
				Ports: []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(podPort)}}}})).To(Succeed())
		Expect(k8s.Create(ctx, &gwv1.HTTPRoute{
			ObjectMeta: metav1.ObjectMeta{Name: "checkout-pods", Namespace: s.ns},
			Spec: gwv1.HTTPRouteSpec{
				CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{gateway.ParentRef()}},
				Hostnames:       []gwv1.Hostname{gwv1.Hostname(host)},
				Rules:           []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{backendRef("checkout")}}},
			},
		})).To(Succeed())
		deployment("checkout-v1", s.ns, "v1", 10)
		deployment("checkout-v2", s.ns, "v2", 0)
		pods := startPods(s.ns, "checkout", map[string]int{"checkout-v1": 0, "checkout-v2": 10})
		DeferCleanup(pods.stop)
		r := wire.Request{Host: host, Path: "/checkout"}
		expectPods(r, pods.addrs("checkout-v1", 10))
		expectAllOn("checkout-v1", r)

		exp := &cxv1.CXExperiment{
			ObjectMeta: metav1.ObjectMeta{Name: "checkout-replicas", Namespace: s.ns},
			Spec: cxv1.CXExperimentSpec{
				Variants: []cxv1.Variant{
					{Name: "control", Control: true, Deployment: "checkout-v1"},
					{Name: "one-page", Deployment: "checkout-v2"},
				},
				Traffic:        cxv1.Traffic{Replicas: &cxv1.ReplicasTraffic{Total: 10}},
				Steps:          []cxv1.Step{{Weight: 30, MinDuration: metav1.Duration{Duration: time.Hour}}},
				Promotion:      cxv1.PromotionManual,
				OnInconclusive: cxv1.InconclusiveHold,
				Satisfaction: cxv1.Satisfaction{Metric: cxv1.MetricCSAT, MaxDrop: "20", Confidence: "95", MinResponses: 50,
					Source: cxv1.SatisfactionSource{Collector: &cxv1.CollectorSource{}}, Interval: metav1.Duration{Duration: 30 * time.Second}},
			},
		}
		start(exp)
		Eventually(func() []int32 { return replicas(s.ns, "checkout-v1", "checkout-v2") }).Should(Equal([]int32{7, 3}))
		// Scaling passes through 10+3 pods (up before down): wait for the
		// final pods, then check the shares.
		expectPods(r, append(pods.addrs("checkout-v1", 7), pods.addrs("checkout-v2", 3)...))
		expectSplit(r, map[string]float64{"checkout-v1": 0.7, "checkout-v2": 0.3})

		deleteExperiment(exp)
		Expect(replicas(s.ns, "checkout-v1", "checkout-v2")).To(Equal([]int32{10, 0}), "the replica counts as they were")
		expectPods(r, pods.addrs("checkout-v1", 10))
		expectAllOn("checkout-v1", r)
	})
})

// podPort is the port the replica mode's pods listen on.
const podPort = 9100

func deployment(name, ns, version string, n int32) {
	GinkgoHelper()
	labels := map[string]string{"app": "checkout", "version": version}
	Expect(k8s.Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "checkout", Image: "example.com/checkout:" + version}}},
			},
		},
	})).To(Succeed())
}

func replicas(ns string, names ...string) []int32 {
	GinkgoHelper()
	out := make([]int32, len(names))
	for i, n := range names {
		d := &appsv1.Deployment{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: n}, d)).To(Succeed())
		out[i] = *d.Spec.Replicas
	}
	return out
}

// pods stands in for what a cluster does between a Deployment's replica
// count and a Service's endpoints (the ReplicaSet controller, the scheduler,
// the kubelet, the endpointslice controller), none of which runs here: it
// keeps one backend per possible pod of each Deployment, listening on its
// own address of netns.Prefix (each Deployment's pods numbered from its
// offset), and writes the Service's EndpointSlice with the first
// spec.replicas of them, every pod ready at once.
type pods struct {
	offsets map[string]int
	stop    func()
}

const maxPods = 10

// addrs are the addresses of a Deployment's first n pods.
func (p *pods) addrs(dep string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("192.0.2.%d", 11+p.offsets[dep]+i)
	}
	return out
}

func startPods(ns, service string, offsets map[string]int) *pods {
	GinkgoHelper()
	p := &pods{offsets: offsets}
	var started []*wire.Backend
	for dep := range offsets {
		for _, a := range p.addrs(dep, maxPods) {
			b, err := wire.StartBackend(dep, fmt.Sprintf("%s:%d", a, podPort), dep)
			Expect(err).NotTo(HaveOccurred())
			started = append(started, b)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		var last []string
		for runCtx.Err() == nil {
			var addrs []string
			for _, dep := range slices.Sorted(maps.Keys(offsets)) {
				d := &appsv1.Deployment{}
				if err := k8s.Get(runCtx, client.ObjectKey{Namespace: ns, Name: dep}, d); err != nil {
					continue
				}
				addrs = append(addrs, p.addrs(dep, min(int(*d.Spec.Replicas), maxPods))...)
			}
			if !slices.Equal(addrs, last) {
				if err := wire.PublishEndpoints(runCtx, k8s, ns, service, podPort, addrs...); err == nil {
					last = addrs
				}
			}
			time.Sleep(50 * time.Millisecond) // a kubelet's and a controller's reaction time, roughly
		}
	}()
	p.stop = func() {
		stop()
		<-done
		for _, b := range started {
			b.Close()
		}
	}
	return p
}

// expectPods waits until the proxy balances r over exactly these pods.
func expectPods(r wire.Request, addrs []string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		s := customers.Split(ctx, r, waitSample)
		g.Expect(s.Errors).To(BeEmpty())
		seen := map[string]bool{}
		for _, reply := range s.Replies {
			host, _, _ := strings.Cut(reply.Addr, ":")
			seen[host] = true
		}
		g.Expect(slices.Sorted(maps.Keys(seen))).To(ConsistOf(addrs))
	}).WithTimeout(60 * time.Second).Should(Succeed())
}
