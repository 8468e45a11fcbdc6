package controller

import (
	"encoding/json"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/test/argocd"
)

// What GitOps tools read from an experiment the real controller drives:
// kstatus (Flux health checks, kubectl wait) with cli-utils, and Argo CD's
// health check and resource actions (config/argocd) run as Argo CD runs them.

// live is the experiment as a GitOps tool reads it: unstructured, with its
// kind.
func (s *shop) live(name string) *unstructured.Unstructured {
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(s.get(name))
	Expect(err).NotTo(HaveOccurred())
	u := &unstructured.Unstructured{Object: content}
	u.SetGroupVersionKind(cxv1.GroupVersion.WithKind("CXExperiment"))
	return u
}

// kstatus polls the experiment's kstatus (what Flux's health checks compute).
func (s *shop) kstatus(name string) func() *kstatus.Result {
	return func() *kstatus.Result {
		r, err := kstatus.Compute(s.live(name))
		Expect(err).NotTo(HaveOccurred())
		return r
	}
}

// argoHealth polls the experiment's health by config/argocd/health.lua.
func (s *shop) argoHealth(name string) func() argocd.Health {
	script, err := argocd.Script("health.lua")
	Expect(err).NotTo(HaveOccurred())
	return func() argocd.Health {
		h, err := argocd.RunHealth(script, s.live(name).Object)
		Expect(err).NotTo(HaveOccurred())
		return h
	}
}

// argoEnabled polls the names of the Argo CD actions offered enabled.
func (s *shop) argoEnabled(name string) func() []string {
	script, err := argocd.Script("actions/discovery.lua")
	Expect(err).NotTo(HaveOccurred())
	return func() []string {
		actions, err := argocd.RunDiscovery(script, s.live(name).Object)
		Expect(err).NotTo(HaveOccurred())
		Expect(actions).To(HaveLen(5), "every action is listed, enabled or not")
		var out []string
		for _, a := range []string{"pause", "resume", "promote", "abort", "retry"} {
			Expect(actions).To(HaveKey(a))
			if !actions[a].Disabled {
				out = append(out, a)
			}
		}
		return out
	}
}

// argoAction runs an Argo CD action as Argo CD does: the script changes the
// live object, and the difference is applied as a JSON merge patch. It
// returns the patch.
func (s *shop) argoAction(name, action string) map[string]any {
	script, err := argocd.Script("actions/" + action + "/action.lua")
	Expect(err).NotTo(HaveOccurred())
	u := s.live(name)
	changed, err := argocd.RunAction(script, u.Object)
	Expect(err).NotTo(HaveOccurred())
	before, err := json.Marshal(u.Object)
	Expect(err).NotTo(HaveOccurred())
	after, err := json.Marshal(changed)
	Expect(err).NotTo(HaveOccurred())
	patch, err := jsonpatch.CreateMergePatch(before, after)
	Expect(err).NotTo(HaveOccurred())
	Expect(k8s.Patch(ctx, u, client.RawPatch(types.MergePatchType, patch))).To(Succeed())
	var out map[string]any
	Expect(json.Unmarshal(patch, &out)).To(Succeed())
	return out
}

// tokenPatch is the merge patch of an annotation action: that annotation
// only, set to a UTC timestamp.
func tokenPatch(annotation string) OmegaMatcher {
	return HaveKeyWithValue("metadata", HaveKeyWithValue("annotations",
		And(HaveLen(1), HaveKeyWithValue(annotation, MatchRegexp(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ(-\d+)?$`)))))
}

func conditionMessage(exp *cxv1.CXExperiment, t string) string {
	c := condition(exp, t)
	Expect(c).NotTo(BeNil(), "condition %s", t)
	return c.Message
}

var _ = Describe("CXExperiment seen by GitOps tools", func() {
	It("reads InProgress while a step runs, Current when paused and once promoted, driven by the Argo CD actions", func() {
		s := newShop()
		exp := s.experiment("checkout-redesign", "enterprise")
		exp.Spec.Steps[0].MinDuration.Duration = time.Hour // only the promote action ends it
		s.start(exp)

		Eventually(func(g Gomega) {
			g.Expect(s.kstatus("checkout-redesign")().Status).To(Equal(kstatus.InProgressStatus))
			h := s.argoHealth("checkout-redesign")()
			g.Expect(h.Status).To(Equal("Progressing"))
			g.Expect(h.Message).To(Equal(conditionMessage(s.get("checkout-redesign"), cxv1.ConditionReconciling)))
		}).Should(Succeed())
		Expect(s.argoEnabled("checkout-redesign")()).To(Equal([]string{"pause", "promote", "abort"}))

		Expect(s.argoAction("checkout-redesign", "pause")).To(Equal(map[string]any{"spec": map[string]any{"paused": true}}))
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhasePaused))
		Eventually(func(g Gomega) {
			r := s.kstatus("checkout-redesign")()
			g.Expect(r.Status).To(Equal(kstatus.CurrentStatus), r.Message)
			exp := s.get("checkout-redesign")
			g.Expect(condition(exp, cxv1.ConditionReady).Reason).To(Equal(cxv1.ReasonPaused), "Current with a Paused reason")
			g.Expect(s.argoHealth("checkout-redesign")()).To(Equal(argocd.Health{Status: "Suspended", Message: conditionMessage(exp, cxv1.ConditionReady)}))
		}).Should(Succeed())
		Expect(s.argoEnabled("checkout-redesign")()).To(Equal([]string{"resume", "promote", "abort"}))

		Expect(s.argoAction("checkout-redesign", "resume")).To(Equal(map[string]any{"spec": map[string]any{"paused": false}}))
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseProgressing))
		Eventually(func() kstatus.Status { return s.kstatus("checkout-redesign")().Status }).Should(Equal(kstatus.InProgressStatus))

		s.post("checkout-redesign", scores("control", "enterprise", firstStepControl(1500), 86))
		s.post("checkout-redesign", scores("one-page", "enterprise", 1500, 87))
		Eventually(func() cxv1.Verdict { return s.get("checkout-redesign").Status.Segments[0].Variants[1].Verdict }).
			Should(Equal(cxv1.VerdictNonInferior))
		Expect(s.argoAction("checkout-redesign", "promote")).To(tokenPatch(cxv1.AnnotationPromote))
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseSucceeded))
		Eventually(func(g Gomega) {
			g.Expect(s.kstatus("checkout-redesign")().Status).To(Equal(kstatus.CurrentStatus))
			h := s.argoHealth("checkout-redesign")()
			g.Expect(h.Status).To(Equal("Healthy"))
			g.Expect(h.Message).To(And(Equal(conditionMessage(s.get("checkout-redesign"), cxv1.ConditionReady)), ContainSubstring("promoted")))
		}).Should(Succeed())
		Expect(s.argoEnabled("checkout-redesign")()).To(BeEmpty(), "nothing applies to a promoted experiment")
	})

	It("reads Current and Suspended while it awaits a manual promotion, until the promote action", func() {
		s := newShop()
		s.awaitManualPromotion("checkout-redesign")
		Eventually(func(g Gomega) {
			g.Expect(s.kstatus("checkout-redesign")().Status).To(Equal(kstatus.CurrentStatus))
			h := s.argoHealth("checkout-redesign")()
			g.Expect(h.Status).To(Equal("Suspended"))
			g.Expect(h.Message).To(Equal(conditionMessage(s.get("checkout-redesign"), cxv1.ConditionReady)))
		}).Should(Succeed())
		Expect(s.argoEnabled("checkout-redesign")()).To(Equal([]string{"pause", "promote", "abort"}))

		Expect(s.argoAction("checkout-redesign", "promote")).To(tokenPatch(cxv1.AnnotationPromote))
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseSucceeded))
		Eventually(func() string { return s.argoHealth("checkout-redesign")().Status }).Should(Equal("Healthy"))
	})

	It("reads Failed and Degraded once rolled back in every segment; retry starts a new run, abort ends it", func() {
		s := newShop()
		s.start(s.experiment("checkout-redesign", "enterprise", "new-customers"))
		for _, seg := range []string{"enterprise", "new-customers"} {
			s.post("checkout-redesign", scores("control", seg, firstStepControl(1500), 86))
			s.post("checkout-redesign", scores("one-page", seg, 1500, 60))
		}
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseRolledBack))
		Eventually(func(g Gomega) {
			r := s.kstatus("checkout-redesign")()
			g.Expect(r.Status).To(Equal(kstatus.FailedStatus))
			exp := s.get("checkout-redesign")
			g.Expect(r.Message).To(Equal(conditionMessage(exp, cxv1.ConditionStalled)))
			g.Expect(s.argoHealth("checkout-redesign")()).To(Equal(argocd.Health{Status: "Degraded", Message: conditionMessage(exp, cxv1.ConditionStalled)}))
		}).Should(Succeed())
		Expect(s.argoHealth("checkout-redesign")().Message).To(ContainSubstring(cxv1.AnnotationRetry))
		Expect(s.argoEnabled("checkout-redesign")()).To(Equal([]string{"retry"}))

		Expect(s.argoAction("checkout-redesign", "retry")).To(tokenPatch(cxv1.AnnotationRetry))
		Eventually(func(g Gomega) {
			exp := s.get("checkout-redesign")
			g.Expect(exp.Status.Run).To(Equal(int32(2)))
			g.Expect(exp.Status.Phase).To(Equal(cxv1.PhaseProgressing))
		}).Should(Succeed())
		Eventually(func() string { return s.argoHealth("checkout-redesign")().Status }).Should(Equal("Progressing"))
		Expect(s.kstatus("checkout-redesign")().Status).To(Equal(kstatus.InProgressStatus))

		Expect(s.argoAction("checkout-redesign", "abort")).To(tokenPatch(cxv1.AnnotationAbort))
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseRolledBack))
		Eventually(func() kstatus.Status { return s.kstatus("checkout-redesign")().Status }).Should(Equal(kstatus.FailedStatus))
		Expect(s.argoHealth("checkout-redesign")().Status).To(Equal("Degraded"))
	})

	It("reads Failed and Degraded with the field to fix when the spec is invalid", func() {
		s := newShop()
		s.createInvalidSpec("checkout-redesign")

		Eventually(func(g Gomega) {
			r := s.kstatus("checkout-redesign")()
			g.Expect(r.Status).To(Equal(kstatus.FailedStatus))
			g.Expect(r.Message).To(ContainSubstring("spec.satisfaction.maxDrop"))
			h := s.argoHealth("checkout-redesign")()
			g.Expect(h.Status).To(Equal("Degraded"))
			g.Expect(h.Message).To(ContainSubstring("spec.satisfaction.maxDrop"))
		}).Should(Succeed())
		Expect(s.argoEnabled("checkout-redesign")()).To(Equal([]string{"retry"}))
	})

	It("reads InProgress and Progressing until the controller has observed a changed spec", func() {
		s := newShop()
		s.start(s.experiment("checkout-redesign", "enterprise"))
		Eventually(func() int64 { return s.get("checkout-redesign").Status.ObservedGeneration }).Should(Equal(int64(1)))

		// Git changes the spec while the controller cannot write status
		// (an API server refusing it, or a controller that is down).
		statusFaults.set(s.ns, true)
		defer statusFaults.set(s.ns, false)
		s.update("checkout-redesign", func(exp *cxv1.CXExperiment) {
			exp.Spec.Hypothesis = "One-page checkout keeps every customer as satisfied"
		})
		Eventually(func(g Gomega) {
			exp := s.get("checkout-redesign")
			g.Expect(exp.Generation).To(Equal(int64(2)))
			g.Expect(exp.Status.ObservedGeneration).To(Equal(int64(1)))
			r := s.kstatus("checkout-redesign")()
			g.Expect(r.Status).To(Equal(kstatus.InProgressStatus))
			g.Expect(r.Message).To(Equal("CXExperiment generation is 2, but latest observed generation is 1"))
			g.Expect(s.argoHealth("checkout-redesign")()).To(Equal(argocd.Health{Status: "Progressing", Message: "Waiting for the controller to apply generation 2"}))
		}).Should(Succeed())
		Consistently(func() string { return s.argoHealth("checkout-redesign")().Status }, time.Second).Should(Equal("Progressing"))

		statusFaults.set(s.ns, false)
		Eventually(func(g Gomega) {
			exp := s.get("checkout-redesign")
			g.Expect(exp.Status.ObservedGeneration).To(Equal(int64(2)))
			g.Expect(s.argoHealth("checkout-redesign")().Message).To(Equal(conditionMessage(exp, cxv1.ConditionReconciling)))
		}).Should(Succeed())
	})
})
