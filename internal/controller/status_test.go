package controller

import (
	"slices"
	"strings"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/metrics"
)

var _ = Describe("CXExperiment status", func() {
	It("is Reconciling while a step runs, then Ready without Reconciling or Stalled once promoted", func() {
		s := newShop()
		s.start(s.experiment("checkout-redesign", "enterprise"))
		Eventually(func(g Gomega) {
			exp := s.get("checkout-redesign")
			g.Expect(condition(exp, cxv1.ConditionReconciling)).NotTo(BeNil())
			g.Expect(condition(exp, cxv1.ConditionReconciling).Status).To(Equal(metav1.ConditionTrue))
			g.Expect(condition(exp, cxv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
			g.Expect(condition(exp, cxv1.ConditionStalled)).To(BeNil())
			g.Expect(exp.Status.ObservedGeneration).To(Equal(exp.Generation))
		}).Should(Succeed())

		s.post("checkout-redesign", scores("control", "enterprise", firstStepControl(1500), 86))
		s.post("checkout-redesign", scores("one-page", "enterprise", 1500, 87))
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseSucceeded))
		exp := s.get("checkout-redesign")
		Expect(condition(exp, cxv1.ConditionReady).Reason).To(Equal(cxv1.ReasonSucceeded))
		Expect(condition(exp, cxv1.ConditionReconciling)).To(BeNil(), "kstatus: Current")
		Expect(condition(exp, cxv1.ConditionStalled)).To(BeNil())
		Expect(condition(exp, "Progressing")).To(BeNil(), "the condition of older versions is gone")
	})

	It("does not report a generation as observed while its traffic change keeps failing", func() {
		s := newShop()
		routeFaults.set(s.ns, true)
		defer routeFaults.set(s.ns, false)
		// Every version of the experiment, as Argo CD and kstatus see it: a
		// watch misses no write, however short-lived.
		wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
		Expect(err).NotTo(HaveOccurred())
		w, err := wc.Watch(ctx, &cxv1.CXExperimentList{}, client.InNamespace(s.ns))
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		var (
			mu       sync.Mutex
			versions []cxv1.CXExperiment
		)
		go func() {
			for ev := range w.ResultChan() {
				if exp, ok := ev.Object.(*cxv1.CXExperiment); ok {
					mu.Lock()
					versions = append(versions, *exp)
					mu.Unlock()
				}
			}
		}()
		failedChanges := metrics.TrafficChanges.WithLabelValues(s.ns, "checkout-redesign", "failed")
		s.create(s.experiment("checkout-redesign", "enterprise"))

		// The failed reconcile's status: the route write failed, and
		// observedGeneration (status and conditions) has not advanced.
		Eventually(func(g Gomega) {
			exp := s.get("checkout-redesign")
			routed := condition(exp, cxv1.ConditionTrafficRouted)
			g.Expect(routed).NotTo(BeNil())
			g.Expect(routed.Reason).To(Equal(cxv1.ReasonApplyFailed))
			g.Expect(exp.Status.ObservedGeneration).To(BeZero(), "a GitOps tool must not read a failed reconcile as up to date")
			for _, c := range exp.Status.Conditions {
				g.Expect(c.ObservedGeneration).To(BeZero(), "condition %s", c.Type)
			}
			g.Expect(condition(exp, cxv1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
			g.Expect(condition(exp, cxv1.ConditionReady).Reason).To(Equal(cxv1.ReasonApplyFailed))
		}).Should(Succeed())
		Expect(s.childExists("checkout-redesign")()).To(BeFalse())
		// Retries write the decision ahead each time; none of those writes
		// may claim the generation or readiness before the change succeeds.
		Eventually(func() float64 { return testutil.ToFloat64(failedChanges) }).Should(BeNumerically(">=", 3))
		latest := s.get("checkout-redesign").ResourceVersion
		Eventually(func() string {
			mu.Lock()
			defer mu.Unlock()
			return versions[len(versions)-1].ResourceVersion
		}).Should(Equal(latest), "the watch has caught up")
		mu.Lock()
		seen := slices.Clone(versions)
		mu.Unlock()
		for _, v := range seen {
			Expect(v.Status.ObservedGeneration).To(BeZero(), "version %s claims generation %d was observed while its route write fails", v.ResourceVersion, v.Status.ObservedGeneration)
			if ready := condition(&v, cxv1.ConditionReady); ready != nil && ready.Status == metav1.ConditionTrue {
				Expect(ready.ObservedGeneration).To(BeNumerically("<", v.Generation), "version %s reads Ready for generation %d while its route write fails", v.ResourceVersion, v.Generation)
			}
		}
		GinkgoWriter.Printf("%d versions of the experiment over %.0f failed route writes, none observed or Ready for the generation\n", len(seen), testutil.ToFloat64(failedChanges))

		routeFaults.set(s.ns, false)
		Eventually(func(g Gomega) {
			exp := s.get("checkout-redesign")
			g.Expect(exp.Status.ObservedGeneration).To(Equal(exp.Generation))
			g.Expect(condition(exp, cxv1.ConditionTrafficRouted).Reason).To(Equal(cxv1.ReasonApplied))
			g.Expect(condition(exp, cxv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
		}).Should(Succeed())
		Eventually(s.childExists("checkout-redesign")).Should(BeTrue())
	})

	It("reports an invalid spec the schema let through as Stalled and not Ready", func() {
		// An API server whose CRD is older than the controller (here: one
		// without the maxDrop rule) stores a spec the controller refuses.
		s := newShop()
		s.createInvalidSpec("checkout-redesign")

		Eventually(func(g Gomega) {
			got := s.get("checkout-redesign")
			g.Expect(got.Status.Phase).To(Equal(cxv1.PhaseFailed))
			stalled := condition(got, cxv1.ConditionStalled)
			g.Expect(stalled).NotTo(BeNil(), "tools that read conditions must see that it cannot go on")
			g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(stalled.Reason).To(Equal(cxv1.ReasonInvalidSpec))
			g.Expect(stalled.Message).To(ContainSubstring("spec.satisfaction.maxDrop"))
			ready := condition(got, cxv1.ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.Reason).To(Equal(cxv1.ReasonInvalidSpec))
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation), "the generation was observed and judged invalid (kstatus: Failed)")
		}).Should(Succeed())
		Expect(s.childExists("checkout-redesign")()).To(BeFalse())
	})
})

// relaxMaxDropRule removes the CEL rule that bounds spec.satisfaction.maxDrop
// from the CXExperiment CRD of the API server, until the spec ends.
func relaxMaxDropRule() {
	key := types.NamespacedName{Name: "cxexperiments.cx.rapport.dev"}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	Expect(k8s.Get(ctx, key, crd)).To(Succeed())
	original := crd.Spec.DeepCopy()
	DeferCleanup(func() {
		Eventually(func() error {
			c := &apiextensionsv1.CustomResourceDefinition{}
			if err := k8s.Get(ctx, key, c); err != nil {
				return err
			}
			c.Spec = *original
			return k8s.Update(ctx, c)
		}).Should(Succeed())
	})
	Eventually(func() error {
		c := &apiextensionsv1.CustomResourceDefinition{}
		if err := k8s.Get(ctx, key, c); err != nil {
			return err
		}
		for i := range c.Spec.Versions {
			sat := c.Spec.Versions[i].Schema.OpenAPIV3Schema.Properties["spec"].Properties["satisfaction"]
			var keep apiextensionsv1.ValidationRules
			for _, r := range sat.XValidations {
				if !strings.Contains(r.Rule, "maxDrop") {
					keep = append(keep, r)
				}
			}
			sat.XValidations = keep
			spec := c.Spec.Versions[i].Schema.OpenAPIV3Schema.Properties["spec"]
			spec.Properties["satisfaction"] = sat
			c.Spec.Versions[i].Schema.OpenAPIV3Schema.Properties["spec"] = spec
		}
		return k8s.Update(ctx, c)
	}).Should(Succeed())
}
