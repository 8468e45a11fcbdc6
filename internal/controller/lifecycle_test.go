package controller

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/routing/gatewayapi"
)

var _ = Describe("CXExperiment lifecycle", func() {
	It("promotes a variant customers like as much, step by step, in every segment", func() {
		s := newShop()
		parentBefore, err := s.getRoute("checkout")
		Expect(err).NotTo(HaveOccurred())
		s.create(s.experiment("checkout-redesign", "enterprise", "new-customers"))

		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseProgressing))
		Eventually(func() map[string]map[string]int32 { return s.weights("checkout-redesign") }).Should(Equal(map[string]map[string]int32{
			"enterprise":    {"control": 90, "one-page": 10},
			"new-customers": {"control": 90, "one-page": 10},
		}))

		for _, seg := range []string{"enterprise", "new-customers"} {
			s.post("checkout-redesign", scores("control", seg, firstStepControl(1500), 86))
			s.post("checkout-redesign", scores("one-page", seg, 1500, 87))
		}
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseSucceeded))
		// Status is written ahead of the route: the route follows at once.
		Eventually(func() map[string]map[string]int32 { return s.weights("checkout-redesign") }).Should(Equal(map[string]map[string]int32{
			"enterprise":    {"one-page": 100, "control": 0},
			"new-customers": {"one-page": 100, "control": 0},
		}))
		exp := s.get("checkout-redesign")
		Expect(exp.Status.CurrentStep).To(Equal(int32(3)))
		for _, seg := range exp.Status.Segments {
			Expect(seg.Promoted).To(Equal("one-page"))
		}
		Expect(condition(exp, cxv1.ConditionReady).Status).To(BeEquivalentTo("True"))

		child, err := s.getRoute(gatewayapi.ChildRouteName("checkout-redesign"))
		Expect(err).NotTo(HaveOccurred())
		Expect(child.Spec.Rules).To(HaveLen(2))
		parentAfter, err := s.getRoute("checkout")
		Expect(err).NotTo(HaveOccurred())
		Expect(routeJSON(parentAfter)).To(Equal(routeJSON(parentBefore)), "the user's route must never change with segments")
	})
})

var _ = Describe("CXExperiment rollbacks", func() {
	It("rolls back only the segment whose CSAT dropped", func() {
		s := newShop()
		s.create(s.experiment("checkout-redesign", "enterprise", "new-customers"))
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseProgressing))

		s.post("checkout-redesign", scores("control", "enterprise", 1000, 86))
		s.post("checkout-redesign", scores("one-page", "enterprise", 1000, 70))
		Eventually(s.segmentWeights("checkout-redesign", "enterprise")).
			Should(Equal(map[string]int32{"control": 100}), "enterprise customers go back to the control")
		// Status records the rollback before the route changes (write-ahead).
		exp := s.get("checkout-redesign")
		Expect(exp.Status.Rollbacks).To(HaveLen(1))
		rb := exp.Status.Rollbacks[0]
		Expect(rb.Segment).To(Equal("enterprise"))
		Expect(rb.Variant).To(Equal("one-page"))
		Expect(rb.Reason).To(Equal(cxv1.RollbackInferior))
		Expect(rb.Evidence).To(ContainSubstring("vs control"))
		Expect(s.weights("checkout-redesign")["new-customers"]).To(Equal(map[string]int32{"control": 90, "one-page": 10}))
		// Events are recorded after the last status write.
		Eventually(func() []string { return s.eventNotes("checkout-redesign", "VariantRolledBack") }).
			Should(ContainElement(ContainSubstring("one-page rolled back in segment enterprise")))

		s.post("checkout-redesign", scores("control", "new-customers", firstStepControl(1500), 86))
		s.post("checkout-redesign", scores("one-page", "new-customers", 1500, 87))
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseSucceeded))
		Eventually(func() map[string]map[string]int32 { return s.weights("checkout-redesign") }).Should(Equal(map[string]map[string]int32{
			"enterprise":    {"control": 100},
			"new-customers": {"control": 0, "one-page": 100},
		}))
		exp = s.get("checkout-redesign")
		Expect(condition(exp, cxv1.ConditionDegraded).Reason).To(Equal(cxv1.ReasonPartialRollback))
	})

	It("rolls back the whole experiment when CSAT drops in every segment, leaving the parent route untouched", func() {
		s := newShop()
		before := s.parentJSON("checkout")()
		s.create(s.experiment("checkout-redesign", "enterprise", "new-customers"))
		Eventually(s.childExists("checkout-redesign")).Should(BeTrue())
		for _, seg := range []string{"enterprise", "new-customers"} {
			s.post("checkout-redesign", scores("control", seg, 1000, 86))
			s.post("checkout-redesign", scores("one-page", seg, 1000, 70))
		}
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseRolledBack))
		Eventually(s.childExists("checkout-redesign")).Should(BeFalse())
		Expect(s.parentJSON("checkout")()).To(Equal(before))
		exp := s.get("checkout-redesign")
		Expect(condition(exp, cxv1.ConditionReady).Reason).To(Equal(cxv1.ReasonRolledBack))
		Expect(condition(exp, cxv1.ConditionStalled).Reason).To(Equal(cxv1.ReasonRolledBack), "kstatus: Failed")
		Expect(condition(exp, cxv1.ConditionStalled).Status).To(Equal(metav1.ConditionTrue))
		Expect(condition(exp, cxv1.ConditionReconciling)).To(BeNil())
		Eventually(s.events("checkout-redesign")).Should(ContainElement("ExperimentRolledBack"))
	})

	It("restores the parent rule byte for byte after a rollback without segments", func() {
		s := newShop()
		before := s.parentJSON("checkout")()
		s.create(s.experiment("checkout-redesign"))
		Eventually(s.segmentWeights("checkout-redesign", "all")).
			Should(Equal(map[string]int32{"control": 90, "one-page": 10}))
		Expect(s.parentJSON("checkout")()).NotTo(Equal(before), "without segments the parent rule carries the split")
		r, err := s.getRoute("checkout")
		Expect(err).NotTo(HaveOccurred())
		Expect(r.Spec.Rules[1].BackendRefs[0].Name).To(BeEquivalentTo("static"), "other rules stay as they were")
		Expect(r.Spec.Rules[0].Filters).To(HaveLen(1), "the rule's filters stay as they were")

		s.post("checkout-redesign", scores("control", "", 1000, 86))
		s.post("checkout-redesign", scores("one-page", "", 1000, 70))
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseRolledBack))
		Eventually(s.parentJSON("checkout")).Should(Equal(before))
	})

	It("rolls back everything on abort and starts a fresh run on retry", func() {
		s := newShop()
		s.create(s.experiment("checkout-redesign", "enterprise"))
		Eventually(s.childExists("checkout-redesign")).Should(BeTrue())
		s.post("checkout-redesign", scores("control", "enterprise", 200, 86))
		s.annotate("checkout-redesign", cxv1.AnnotationAbort)
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseRolledBack))
		Eventually(s.childExists("checkout-redesign")).Should(BeFalse())
		Expect(s.get("checkout-redesign").Status.Rollbacks[0].Reason).To(Equal(cxv1.RollbackAborted))
		Expect(s.postBatch("checkout-redesign", scores("control", "enterprise", 1, 100), "")).To(Equal(409), "a rolled-back experiment takes no feedback")

		s.annotate("checkout-redesign", cxv1.AnnotationRetry)
		Eventually(func() int32 { return s.get("checkout-redesign").Status.Run }).Should(Equal(int32(2)))
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseProgressing))
		Eventually(s.childExists("checkout-redesign")).Should(BeTrue())
		exp := s.get("checkout-redesign")
		Expect(exp.Status.Rollbacks).To(BeEmpty())
		Expect(exp.Status.Segments[0].Variants[0].Responses).To(BeZero(), "run 2 starts with fresh responses")
	})
})

var _ = Describe("CXExperiment manual control", func() {
	It("holds its weights while paused, still rolls back on evidence, and resumes", func() {
		s := newShop()
		exp := s.experiment("checkout-redesign", "enterprise", "new-customers")
		exp.Spec.Steps[0].MinDuration.Duration = 2 * time.Second
		s.create(exp)
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseProgressing))
		s.update("checkout-redesign", func(e *cxv1.CXExperiment) { e.Spec.Paused = true })
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhasePaused))

		s.post("checkout-redesign", scores("control", "new-customers", firstStepControl(1500), 86))
		s.post("checkout-redesign", scores("one-page", "new-customers", 1500, 87))
		s.post("checkout-redesign", scores("control", "enterprise", 1000, 86))
		s.post("checkout-redesign", scores("one-page", "enterprise", 1000, 70))
		Eventually(s.segmentWeights("checkout-redesign", "enterprise")).
			Should(Equal(map[string]int32{"control": 100}), "safety does not wait for a resume")
		Consistently(func() int32 { return s.get("checkout-redesign").Status.CurrentStep }, 3*time.Second).Should(Equal(int32(1)))
		Expect(s.weights("checkout-redesign")["new-customers"]).To(Equal(map[string]int32{"control": 90, "one-page": 10}))

		s.update("checkout-redesign", func(e *cxv1.CXExperiment) { e.Spec.Paused = false })
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseSucceeded))
		Eventually(s.events("checkout-redesign")).Should(ContainElements("Paused", "Resumed"))
	})

	It("waits for a promote action with manual promotion", func() {
		s := newShop()
		s.awaitManualPromotion("checkout-redesign")
		Expect(s.conditionReason("checkout-redesign", cxv1.ConditionReady)()).To(Equal(cxv1.ReasonAwaitingPromotion))
		Expect(s.phase("checkout-redesign")()).To(Equal(cxv1.PhaseProgressing))
		Eventually(s.segmentWeights("checkout-redesign", "enterprise")).
			Should(Equal(map[string]int32{"control": 50, "one-page": 50}))

		s.annotate("checkout-redesign", cxv1.AnnotationPromote)
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseSucceeded))
		Eventually(s.segmentWeights("checkout-redesign", "enterprise")).
			Should(Equal(map[string]int32{"control": 0, "one-page": 100}))
		Eventually(func() []string { return s.eventNotes("checkout-redesign", "Promoted") }).
			Should(ContainElement(ContainSubstring("by the cx.rapport.dev/promote annotation")))
	})
})

var _ = Describe("CXExperiment undecided steps", func() {
	undecided := func(s *shop, policy cxv1.InconclusivePolicy) {
		exp := s.experiment("checkout-redesign", "enterprise")
		exp.Spec.OnInconclusive = policy
		for i := range exp.Spec.Steps {
			exp.Spec.Steps[i].MaxDuration = &metav1.Duration{Duration: 2 * time.Second}
		}
		s.create(exp)
	}

	It("rolls back an undecided variant at maxDuration with onInconclusive: Rollback", func() {
		s := newShop()
		undecided(s, cxv1.InconclusiveRollback)
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseRolledBack))
		rb := s.get("checkout-redesign").Status.Rollbacks
		Expect(rb).To(HaveLen(1))
		Expect(rb[0].Reason).To(Equal(cxv1.RollbackInconclusive))
		Expect(rb[0].Evidence).To(ContainSubstring("InsufficientData"))
	})

	It("holds at the step with onInconclusive: Hold until the evidence decides", func() {
		s := newShop()
		undecided(s, cxv1.InconclusiveHold)
		Eventually(s.waiting("checkout-redesign")).Should(Equal(cxv1.WaitingInconclusive))
		Expect(s.get("checkout-redesign").Status.CurrentStep).To(Equal(int32(1)))
		Expect(s.weights("checkout-redesign")["enterprise"]).To(Equal(map[string]int32{"control": 90, "one-page": 10}))
		s.post("checkout-redesign", scores("control", "enterprise", firstStepControl(1500), 86))
		s.post("checkout-redesign", scores("one-page", "enterprise", 1500, 87))
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseSucceeded))
	})

	It("continues through the steps with onInconclusive: Continue but never promotes an undecided variant", func() {
		s := newShop()
		undecided(s, cxv1.InconclusiveContinue)
		Eventually(func() int32 { return s.get("checkout-redesign").Status.CurrentStep }, 20*time.Second).Should(Equal(int32(3)))
		Eventually(s.waiting("checkout-redesign")).Should(Equal(cxv1.WaitingInconclusive))
		Expect(s.phase("checkout-redesign")()).To(Equal(cxv1.PhaseProgressing))
		Eventually(s.segmentWeights("checkout-redesign", "enterprise")).
			Should(Equal(map[string]int32{"control": 50, "one-page": 50}))
	})
})

var _ = Describe("CXExperiment resilience", func() {
	It("resumes at the same step with the same weights after a controller restart", func() {
		s := newShop()
		exp := s.experiment("checkout-redesign", "enterprise")
		exp.Spec.Steps[1].MinDuration.Duration = time.Hour
		s.start(exp)
		s.post("checkout-redesign", scores("control", "enterprise", firstStepControl(1500), 86))
		s.post("checkout-redesign", scores("one-page", "enterprise", 1500, 87))
		Eventually(func() int32 { return s.get("checkout-redesign").Status.CurrentStep }).Should(Equal(int32(2)))
		Eventually(s.segmentWeights("checkout-redesign", "enterprise")).Should(Equal(map[string]int32{"control": 70, "one-page": 30}))
		before := s.get("checkout-redesign").Status

		restartManager()
		s.post("checkout-redesign", scores("control", "enterprise", 10, 86)) // wakes the new manager
		Consistently(func() int32 { return s.get("checkout-redesign").Status.CurrentStep }, 2*time.Second).Should(Equal(int32(2)))
		after := s.get("checkout-redesign").Status
		Expect(after.StepStartedAt.Equal(before.StepStartedAt)).To(BeTrue(), "the step's clock is not reset by a restart")
		Expect(s.weights("checkout-redesign")["enterprise"]).To(Equal(map[string]int32{"control": 70, "one-page": 30}))
		Eventually(func() int64 { return s.get("checkout-redesign").Status.Segments[0].Variants[0].Responses }).
			Should(Equal(int64(firstStepControl(1500)+10)), "no acknowledged response is lost; status shows it within the interval")
	})

	It("restores what it owns when someone edits the child route, and keeps user edits to the parent", func() {
		s := newShop()
		s.create(s.experiment("checkout-redesign", "enterprise"))
		Eventually(s.childExists("checkout-redesign")).Should(BeTrue())
		child, err := s.getRoute(gatewayapi.ChildRouteName("checkout-redesign"))
		Expect(err).NotTo(HaveOccurred())
		child.Spec.Rules[0].BackendRefs[1].Weight = ptr(int32(90))
		Expect(k8s.Update(ctx, child)).To(Succeed())
		Eventually(s.segmentWeights("checkout-redesign", "enterprise")).
			Should(Equal(map[string]int32{"control": 90, "one-page": 10}))

		parent, err := s.getRoute("checkout")
		Expect(err).NotTo(HaveOccurred())
		parent.Spec.Hostnames = append(parent.Spec.Hostnames, "www.shop.example.com")
		Expect(k8s.Update(ctx, parent)).To(Succeed())
		Eventually(func() []gwv1.Hostname {
			c, err := s.getRoute(gatewayapi.ChildRouteName("checkout-redesign"))
			Expect(err).NotTo(HaveOccurred())
			return c.Spec.Hostnames
		}).Should(ConsistOf(gwv1.Hostname("shop.example.com"), gwv1.Hostname("www.shop.example.com")), "the child follows the parent's hostnames")
		p, _ := s.getRoute("checkout")
		Expect(p.Spec.Hostnames).To(HaveLen(2), "the user's edit is kept")
	})

	It("re-applies its split when the parent rule is reverted without segments", func() {
		s := newShop()
		before, err := s.getRoute("checkout")
		Expect(err).NotTo(HaveOccurred())
		s.create(s.experiment("checkout-redesign"))
		Eventually(s.segmentWeights("checkout-redesign", "all")).
			Should(Equal(map[string]int32{"control": 90, "one-page": 10}))
		parent, err := s.getRoute("checkout")
		Expect(err).NotTo(HaveOccurred())
		parent.Spec.Rules[0].BackendRefs = before.Spec.Rules[0].BackendRefs // e.g. a GitOps sync
		parent.Labels["synced"] = "true"
		Expect(k8s.Update(ctx, parent)).To(Succeed())
		Eventually(s.segmentWeights("checkout-redesign", "all")).
			Should(Equal(map[string]int32{"control": 90, "one-page": 10}))
		p, _ := s.getRoute("checkout")
		Expect(p.Labels).To(HaveKeyWithValue("synced", "true"))
	})
})

var _ = Describe("CXExperiment deletion", func() {
	It("deletes a Pending experiment without touching anything", func() {
		s := newShop()
		exp := s.experiment("checkout-redesign", "enterprise")
		exp.Spec.Traffic.GatewayAPI.HTTPRoute = "missing"
		s.create(exp)
		Eventually(func() string {
			c := condition(s.get("checkout-redesign"), cxv1.ConditionReferencesResolved)
			if c == nil {
				return ""
			}
			return c.Reason
		}).Should(Equal(cxv1.ReasonRouteNotFound))
		Expect(k8s.Delete(ctx, s.get("checkout-redesign"))).To(Succeed())
		Eventually(s.deleted("checkout-redesign")).Should(BeTrue())
	})

	It("removes the child route when a running experiment is deleted", func() {
		s := newShop()
		before := s.parentJSON("checkout")()
		s.create(s.experiment("checkout-redesign", "enterprise"))
		Eventually(s.childExists("checkout-redesign")).Should(BeTrue())
		s.post("checkout-redesign", scores("control", "enterprise", 10, 86))
		Expect(k8s.Delete(ctx, s.get("checkout-redesign"))).To(Succeed())
		Eventually(s.deleted("checkout-redesign")).Should(BeTrue())
		Expect(s.childExists("checkout-redesign")()).To(BeFalse())
		Expect(s.parentJSON("checkout")()).To(Equal(before))
		Expect(k8s.Get(ctx, types.NamespacedName{Namespace: s.ns, Name: "checkout-redesign"}, &cxv1.ResponseTally{})).
			To(Satisfy(apierrors.IsNotFound), "the tally goes with the experiment")
	})

	It("restores the parent rule when a running experiment without segments is deleted", func() {
		s := newShop()
		before := s.parentJSON("checkout")()
		s.create(s.experiment("checkout-redesign"))
		Eventually(s.parentJSON("checkout")).ShouldNot(Equal(before))
		Expect(k8s.Delete(ctx, s.get("checkout-redesign"))).To(Succeed())
		Eventually(s.deleted("checkout-redesign")).Should(BeTrue())
		Expect(s.parentJSON("checkout")()).To(Equal(before))
	})

	It("deletes a rolled-back experiment with the traffic already on the control", func() {
		s := newShop()
		before := s.parentJSON("checkout")()
		s.create(s.experiment("checkout-redesign"))
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseProgressing))
		s.annotate("checkout-redesign", cxv1.AnnotationAbort)
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseRolledBack))
		Expect(k8s.Delete(ctx, s.get("checkout-redesign"))).To(Succeed())
		Eventually(s.deleted("checkout-redesign")).Should(BeTrue())
		Expect(s.parentJSON("checkout")()).To(Equal(before))
	})

	It("leaves the promoted split in place when a Succeeded experiment is deleted", func() {
		s := newShop()
		s.start(s.experiment("checkout-redesign", "enterprise"))
		s.post("checkout-redesign", scores("control", "enterprise", firstStepControl(1500), 86))
		s.post("checkout-redesign", scores("one-page", "enterprise", 1500, 87))
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseSucceeded))
		Expect(k8s.Delete(ctx, s.get("checkout-redesign"))).To(Succeed())
		Eventually(s.deleted("checkout-redesign")).Should(BeTrue())
		child, err := s.getRoute(gatewayapi.ChildRouteName("checkout-redesign"))
		Expect(err).NotTo(HaveOccurred(), "the promoted route stays")
		Expect(child.OwnerReferences).To(BeEmpty(), "and is no longer garbage-collected with the experiment")
		Expect(child.Spec.Rules[0].BackendRefs[1].Name).To(BeEquivalentTo("checkout-v2"))
		Expect(*child.Spec.Rules[0].BackendRefs[1].Weight).To(Equal(int32(100)))
	})
})

var _ = Describe("CXExperiment references and conflicts", func() {
	It("waits without touching traffic while a Service is missing, then starts", func() {
		s := newShop()
		exp := s.experiment("checkout-redesign", "enterprise")
		exp.Spec.Variants[1].Service.Name = "checkout-v9"
		s.create(exp)
		Eventually(func() string {
			c := condition(s.get("checkout-redesign"), cxv1.ConditionReferencesResolved)
			if c == nil {
				return ""
			}
			return c.Message
		}).Should(ContainSubstring("Service checkout-v9 of variant one-page not found"))
		Expect(s.phase("checkout-redesign")()).To(Equal(cxv1.PhasePending))
		Expect(s.childExists("checkout-redesign")()).To(BeFalse())
		s.service("checkout-v9")
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseProgressing))
		Eventually(s.childExists("checkout-redesign")).Should(BeTrue())
	})

	It("fails the later of two experiments on the same route and segment, naming the other", func() {
		s := newShop()
		s.create(s.experiment("first", "enterprise"))
		Eventually(s.phase("first")).Should(Equal(cxv1.PhaseProgressing))
		second := s.experiment("second", "enterprise", "new-customers")
		second.Spec.Variants[1].Service.Name = "checkout-v3"
		s.create(second)
		Eventually(s.phase("second")).Should(Equal(cxv1.PhaseFailed))
		c := condition(s.get("second"), cxv1.ConditionReady)
		Expect(c.Reason).To(Equal(cxv1.ReasonConflict))
		Expect(c.Message).To(ContainSubstring("experiment first"))
		Expect(s.conditionReason("second", cxv1.ConditionStalled)()).To(Equal(cxv1.ReasonConflict), "kstatus: Failed")
		Expect(s.childExists("second")()).To(BeFalse())

		third := s.experiment("third", "new-customers")
		third.Spec.Variants[1].Service.Name = "checkout-v3"
		s.create(third)
		Eventually(s.phase("third")).Should(Equal(cxv1.PhaseProgressing), "other segments of the route are free")
	})

	It("fails with a clear condition, not a rejected write, past the Gateway API route limits", func() {
		s := newShop()
		s.route("checkout-multi", 2)
		var segs []string
		for i := range 9 {
			name := fmt.Sprintf("tier-%d", i)
			s.segment(name, cxv1.SegmentMatch{Headers: []cxv1.HeaderMatch{{Name: "x-tier", Value: name}}})
			segs = append(segs, name)
		}
		exp := s.experiment("checkout-redesign", segs...)
		exp.Spec.Traffic.GatewayAPI.HTTPRoute = "checkout-multi"
		s.create(exp)
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseFailed))
		c := condition(s.get("checkout-redesign"), cxv1.ConditionReady)
		Expect(c.Reason).To(Equal(cxv1.ReasonRouteLimitExceeded))
		Expect(c.Message).To(ContainSubstring("18 route rules"))
		Expect(s.childExists("checkout-redesign")()).To(BeFalse())
	})

	It("renders stickiness and request tags on the child route", func() {
		s := newShop()
		exp := s.experiment("checkout-redesign", "enterprise")
		exp.Spec.Traffic.GatewayAPI.Stickiness = &cxv1.Stickiness{Cookie: &cxv1.CookieStickiness{Name: "cx-variant", Lifetime: &metav1.Duration{Duration: 24 * time.Hour}}}
		exp.Spec.Traffic.GatewayAPI.TagRequests = true
		s.create(exp)
		Eventually(s.childExists("checkout-redesign")).Should(BeTrue())
		child, err := s.getRoute(gatewayapi.ChildRouteName("checkout-redesign"))
		Expect(err).NotTo(HaveOccurred())
		sp := child.Spec.Rules[0].SessionPersistence
		Expect(sp).NotTo(BeNil())
		Expect(*sp.SessionName).To(Equal("cx-variant"))
		Expect(string(*sp.AbsoluteTimeout)).To(Equal("24h"))
		variant := child.Spec.Rules[0].BackendRefs[1]
		Expect(variant.Filters).To(HaveLen(1))
		Expect(variant.Filters[0].RequestHeaderModifier.Set).To(ContainElement(gwv1.HTTPHeader{Name: "x-rapport-variant", Value: "one-page"}))
	})
})

var _ = Describe("CXExperiment with replica ratios", func() {
	replicaExperiment := func(s *shop) *cxv1.CXExperiment {
		s.deployment("search-v1", 10)
		s.deployment("search-v2", 0)
		exp := s.experiment("search-ranking")
		exp.Spec.Variants = []cxv1.Variant{
			{Name: "control", Control: true, Deployment: "search-v1"},
			{Name: "personalised", Deployment: "search-v2"},
		}
		exp.Spec.Traffic = cxv1.Traffic{Replicas: &cxv1.ReplicasTraffic{Total: 10}}
		return s.start(exp)
	}

	It("scales the Deployments step by step and promotes", func() {
		s := newShop()
		replicaExperiment(s)
		Eventually(s.replicas("search-v2")).Should(Equal(int32(1)))
		Eventually(s.replicas("search-v1")).Should(Equal(int32(9)), "scaled down after the variant is up")
		s.post("search-ranking", scores("control", "", firstStepControl(1500), 86))
		s.post("search-ranking", scores("personalised", "", 1500, 87))
		Eventually(s.phase("search-ranking")).Should(Equal(cxv1.PhaseSucceeded))
		Eventually(s.replicas("search-v2")).Should(Equal(int32(10)))
		Eventually(s.replicas("search-v1")).Should(Equal(int32(0)))
	})

	It("puts every pod back on the control on a rollback and restores the original counts on deletion", func() {
		s := newShop()
		replicaExperiment(s)
		Eventually(s.replicas("search-v2")).Should(Equal(int32(1)))
		s.post("search-ranking", scores("control", "", 1000, 86))
		s.post("search-ranking", scores("personalised", "", 1000, 70))
		Eventually(s.phase("search-ranking")).Should(Equal(cxv1.PhaseRolledBack))
		Eventually(s.replicas("search-v2")).Should(Equal(int32(0)))
		Expect(s.replicas("search-v1")()).To(Equal(int32(10)))
		Expect(k8s.Delete(ctx, s.get("search-ranking"))).To(Succeed())
		Eventually(s.deleted("search-ranking")).Should(BeTrue())
		Expect(s.replicas("search-v1")()).To(Equal(int32(10)))
		Expect(s.replicas("search-v2")()).To(Equal(int32(0)))
	})
})

var _ = Describe("CXExperiment write-ahead", func() {
	It("never changes traffic for a decision it could not record, and applies it once recorded", func() {
		s := newShop()
		s.create(s.experiment("checkout-redesign", "enterprise", "new-customers"))
		atStep1 := map[string]int32{"control": 90, "one-page": 10}
		enterprise := s.segmentWeights("checkout-redesign", "enterprise")
		Eventually(enterprise).Should(Equal(atStep1))
		// The route is written before status records it (appliedAt); refusing
		// status writes before that record lands would hold the answers
		// below back for good.
		s.awaitApplied("checkout-redesign")

		// The API server goes away for status writes just as the evidence
		// arrives: the rollback is decided but cannot be recorded.
		statusFaults.set(s.ns, true)
		defer statusFaults.set(s.ns, false)
		refusedBefore := statusFaults.refused.Load()
		s.post("checkout-redesign", scores("control", "enterprise", 1000, 86))
		s.post("checkout-redesign", scores("one-page", "enterprise", 1000, 70))
		Eventually(statusFaults.refused.Load).Should(BeNumerically(">", refusedBefore), "the rollback was attempted")
		Consistently(enterprise, "3s").Should(Equal(atStep1),
			"a rollback that status does not hold must not reach the route: a later reconcile could judge again and undo it")
		Expect(s.get("checkout-redesign").Status.Rollbacks).To(BeEmpty())

		statusFaults.set(s.ns, false)
		Eventually(enterprise).Should(Equal(map[string]int32{"control": 100}))
		exp := s.get("checkout-redesign")
		Expect(exp.Status.Rollbacks).To(HaveLen(1), "the rollback is recorded once")
		Eventually(func() bool { return s.get("checkout-redesign").Status.Rollbacks[0].TrafficRestoredAt != nil }).Should(BeTrue())
	})
})

var _ = Describe("CXExperiment with a lagging cache", func() {
	It("keeps deciding, reading from the API server, while the manager's cache lags behind its writes", func() {
		s := newShop()
		s.create(s.experiment("checkout-redesign", "enterprise", "new-customers"))
		atStep1 := map[string]int32{"control": 90, "one-page": 10}
		enterprise := s.segmentWeights("checkout-redesign", "enterprise")
		newCustomers := s.segmentWeights("checkout-redesign", "new-customers")
		Eventually(enterprise).Should(Equal(atStep1))
		Eventually(newCustomers).Should(Equal(atStep1))

		// The reconciler's cache stops at this copy, as an informer that
		// re-lists after an API-server outage does; every status write
		// from it conflicts once the controller has written anything.
		exp := s.get("checkout-redesign")
		cacheLag.freeze(exp)
		defer cacheLag.thaw(types.NamespacedName{Namespace: exp.Namespace, Name: exp.Name})
		servedBefore := cacheLag.served.Load()

		// Two decisions, one after the other, each recorded in status
		// before it reaches the route.
		s.post("checkout-redesign", scores("control", "enterprise", 1000, 86))
		s.post("checkout-redesign", scores("one-page", "enterprise", 1000, 70))
		Eventually(enterprise).Should(Equal(map[string]int32{"control": 100}), "the first rollback is decided on the lagging cache")
		s.post("checkout-redesign", scores("control", "new-customers", 1000, 86))
		s.post("checkout-redesign", scores("one-page", "new-customers", 1000, 70))
		Eventually(newCustomers).Should(Equal(map[string]int32{"control": 100}), "so is the second")

		Expect(cacheLag.served.Load()).To(BeNumerically(">", servedBefore), "the reconciler was handed the lagging copy")
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseRolledBack))
		Expect(s.get("checkout-redesign").Status.Rollbacks).To(HaveLen(2), "each rollback is recorded once")
	})
})

var _ = Describe("CXExperiment write-ahead of a restore", func() {
	It("records Failed before putting traffic back on the control after a permanent routing error", func() {
		s := newShop()
		s.create(s.experiment("checkout-redesign", "enterprise", "new-customers"))
		Eventually(s.childExists("checkout-redesign")).Should(BeTrue())

		// The API server refuses status writes as the route grows past what
		// the child route can hold (9 control rules x 2 segments > 16 rules).
		statusFaults.set(s.ns, true)
		defer statusFaults.set(s.ns, false)
		refusedBefore := statusFaults.refused.Load()
		s.addControlRules("checkout", 8)
		Eventually(statusFaults.refused.Load).Should(BeNumerically(">", refusedBefore), "the failure was attempted")
		Consistently(s.childExists("checkout-redesign"), "3s").Should(BeTrue(),
			"the restore must not reach the route before status says Failed: the experiment would run on without its traffic")
		Expect(s.phase("checkout-redesign")()).To(Equal(cxv1.PhaseProgressing))

		statusFaults.set(s.ns, false)
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseFailed))
		Eventually(s.childExists("checkout-redesign")).Should(BeFalse())
		Expect(condition(s.get("checkout-redesign"), cxv1.ConditionReady).Reason).To(Equal(cxv1.ReasonRouteLimitExceeded))
	})
})
