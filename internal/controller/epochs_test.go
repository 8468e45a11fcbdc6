package controller

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// epochWeights returns the weights of each epoch of a segment, by epoch.
func epochWeights(exp *cxv1.CXExperiment, segment string) map[int32]map[string]int32 {
	out := map[int32]map[string]int32{}
	for _, seg := range exp.Status.Segments {
		if seg.Name != segment {
			continue
		}
		for _, ep := range seg.Epochs {
			w := map[string]int32{}
			for _, vw := range ep.Weights {
				w[vw.Variant] = vw.Weight
			}
			out[ep.Epoch] = w
		}
	}
	return out
}

// appliedEpoch returns the last epoch of a segment whose weights the route
// carries (appliedAt stamped), 0 when none.
func appliedEpoch(exp *cxv1.CXExperiment, segment string) int32 {
	for _, seg := range exp.Status.Segments {
		if seg.Name != segment {
			continue
		}
		for i := len(seg.Epochs) - 1; i >= 0; i-- {
			if seg.Epochs[i].AppliedAt != nil {
				return seg.Epochs[i].Epoch
			}
		}
	}
	return 0
}

// experimentAtFence returns the experiment as it was at its tally's fence
// (cxv1.AnnotationExperimentFence): the oldest copy by which the collector
// may count from its cache. It is read from etcd at exactly that version.
func experimentAtFence(g Gomega, ns, name string) *cxv1.CXExperiment {
	tally := &cxv1.ResponseTally{}
	g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, tally)).To(Succeed())
	fence := tally.Annotations[cxv1.AnnotationExperimentFence]
	g.Expect(fence).NotTo(BeEmpty(), "the tally has no fence")
	list := &cxv1.CXExperimentList{}
	g.Expect(k8s.List(ctx, list, client.InNamespace(ns), &client.ListOptions{Raw: &metav1.ListOptions{
		ResourceVersion: fence, ResourceVersionMatch: metav1.ResourceVersionMatchExact}})).To(Succeed())
	for i := range list.Items {
		if list.Items[i].Name == name {
			return &list.Items[i]
		}
	}
	g.Expect(list.Items).To(ContainElement(HaveField("ObjectMeta.Name", name)), "the experiment at the fence's version")
	return nil
}

// decideStepTwoUnder starts an experiment whose step 2 lasts an hour, turns
// f on in its namespace once the route carries step 1, posts the answers
// that decide step 2, and returns once step 2 is written ahead. The caller
// turns f off.
func decideStepTwoUnder(f *faults) *shop {
	s := newShop()
	exp := s.experiment("checkout-redesign", "enterprise")
	exp.Spec.Steps[1].MinDuration.Duration = time.Hour
	s.start(exp)
	Eventually(func() int32 { return appliedEpoch(s.get("checkout-redesign"), "enterprise") }).Should(Equal(int32(1)))

	f.set(s.ns, true)
	s.post("checkout-redesign", scores("control", "enterprise", firstStepControl(1500), 86))
	s.post("checkout-redesign", scores("one-page", "enterprise", 1500, 87))
	Eventually(func() map[int32]map[string]int32 { return epochWeights(s.get("checkout-redesign"), "enterprise") }).
		Should(HaveKey(int32(2)))
	return s
}

var _ = Describe("CXExperiment allocation epochs", func() {
	It("starts an epoch whenever a segment's weights change, and counts answers in the epoch they arrive in", func() {
		s := newShop()
		exp := s.experiment("checkout-redesign", "enterprise")
		exp.Spec.Steps[1].MinDuration.Duration = time.Hour
		s.start(exp)
		Eventually(func() map[int32]map[string]int32 { return epochWeights(s.get("checkout-redesign"), "enterprise") }).
			Should(Equal(map[int32]map[string]int32{1: {"control": 90, "one-page": 10}}))
		// Answers without an epoch count in one once the route carries its
		// weights (before, in epoch 0: served under unknown weights).
		Eventually(func() int32 { return appliedEpoch(s.get("checkout-redesign"), "enterprise") }).Should(Equal(int32(1)))

		s.post("checkout-redesign", scores("control", "enterprise", firstStepControl(1500), 86))
		s.post("checkout-redesign", scores("one-page", "enterprise", 1500, 87))
		Eventually(func() int32 { return s.get("checkout-redesign").Status.CurrentStep }).Should(Equal(int32(2)))
		Eventually(func() map[int32]map[string]int32 { return epochWeights(s.get("checkout-redesign"), "enterprise") }).
			Should(Equal(map[int32]map[string]int32{1: {"control": 90, "one-page": 10}, 2: {"control": 70, "one-page": 30}}))
		Expect(s.get("checkout-redesign").Status.Segments[0].Epoch).To(Equal(int32(2)))
		Eventually(func() int32 { return appliedEpoch(s.get("checkout-redesign"), "enterprise") }).Should(Equal(int32(2)))

		// Answers arriving now belong to epoch 2: the tally keeps both apart.
		s.post("checkout-redesign", scores("control", "enterprise", 70, 86))
		s.post("checkout-redesign", scores("one-page", "enterprise", 30, 87))
		Eventually(func(g Gomega) {
			tally := &cxv1.ResponseTally{}
			g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: s.ns, Name: "checkout-redesign"}, tally)).To(Succeed())
			perEpoch := map[string]map[int32]int64{}
			for _, c := range tally.Spec.Counts {
				if c.Segment != "enterprise" {
					continue
				}
				perEpoch[c.Variant] = map[int32]int64{}
				for _, e := range c.Epochs {
					var n int64
					for _, k := range e.Scores {
						n += k
					}
					perEpoch[c.Variant][e.Epoch] = n
				}
			}
			g.Expect(perEpoch).To(Equal(map[string]map[int32]int64{
				"control":  {1: int64(firstStepControl(1500)), 2: 70},
				"one-page": {1: 1500, 2: 30},
			}))
		}).Should(Succeed())
		Eventually(func() int64 { return s.get("checkout-redesign").Status.Segments[0].Variants[1].Responses }).Should(Equal(int64(1530)))

		// The tally's fence is at a version with epoch 2 applied: a
		// collector whose cache has reached it counts by epoch 2.
		Eventually(func(g Gomega) {
			at := experimentAtFence(g, s.ns, "checkout-redesign")
			g.Expect(appliedEpoch(at, "enterprise")).To(Equal(int32(2)))
		}).Should(Succeed())
	})

	It("counts answers served while a weight change has not reached the route in epoch 0, not in the new epoch", func() {
		// Step 2 is decided and written ahead, but the route refuses it (the
		// controller could as well have stopped between the two writes):
		// customers are still served at step 1's weights.
		s := decideStepTwoUnder(routeFaults)
		defer routeFaults.set(s.ns, false)
		Expect(appliedEpoch(s.get("checkout-redesign"), "enterprise")).To(Equal(int32(1)), "the route does not carry step 2")
		// The fence went up to the status written ahead before the route
		// write was tried: the copy at the fence already has epoch 2.
		Eventually(func(g Gomega) {
			g.Expect(epochWeights(experimentAtFence(g, s.ns, "checkout-redesign"), "enterprise")).To(HaveKey(int32(2)))
		}).Should(Succeed())

		// 2,000 answers at step 1's split (90/10) would be far off step 2's
		// 70/30 if they were counted in epoch 2.
		s.postNow("checkout-redesign", scores("control", "enterprise", 1800, 86))
		s.postNow("checkout-redesign", scores("one-page", "enterprise", 200, 87))
		Eventually(func() int64 { return s.get("checkout-redesign").Status.Segments[0].Variants[1].Responses }).Should(Equal(int64(1700)))
		Consistently(s.conditionReason("checkout-redesign", cxv1.ConditionSampleRatioMismatch), 2*time.Second).
			ShouldNot(Equal(cxv1.ReasonResponseSharesOffWeights), "no mismatch: the answers are in epoch 0, whose weights are unknown")
		tally := &cxv1.ResponseTally{}
		Expect(k8s.Get(ctx, types.NamespacedName{Namespace: s.ns, Name: "checkout-redesign"}, tally)).To(Succeed())
		for _, c := range tally.Spec.Counts {
			for _, e := range c.Epochs {
				Expect(e.Epoch).To(Equal(int32(1)), "%s: nothing counted in epoch %d before the route took its weights", c.Variant, e.Epoch)
			}
		}

		// The route takes step 2: from then on answers count in epoch 2.
		routeFaults.set(s.ns, false)
		Eventually(func() int32 { return appliedEpoch(s.get("checkout-redesign"), "enterprise") }).Should(Equal(int32(2)))
	})

	It("changes no traffic until the tally's fence is raised to the epoch written ahead", func() {
		// The tally's patches fail (the API server refuses them): step 2 is
		// decided and written ahead, but without the fence raised to it a
		// collector with a lagging cache could count step 2's answers in
		// epoch 1, so the route keeps step 1's weights.
		refused := fenceFaults.refused.Load()
		s := decideStepTwoUnder(fenceFaults)
		defer fenceFaults.set(s.ns, false)
		Eventually(fenceFaults.refused.Load).Should(BeNumerically(">", refused))
		Consistently(func() int32 { return appliedEpoch(s.get("checkout-redesign"), "enterprise") }, 2*time.Second).
			Should(Equal(int32(1)), "the route took step 2 before the fence was raised")

		// The API server takes the patches again: the fence goes up, then
		// the route takes step 2.
		fenceFaults.set(s.ns, false)
		Eventually(func() int32 { return appliedEpoch(s.get("checkout-redesign"), "enterprise") }).Should(Equal(int32(2)))
		Eventually(func(g Gomega) {
			g.Expect(appliedEpoch(experimentAtFence(g, s.ns, "checkout-redesign"), "enterprise")).To(Equal(int32(2)))
		}).Should(Succeed())
	})

	It("holds a segment whose answers do not match its weights, says why, and still rolls back", func() {
		s := newShop()
		s.start(s.experiment("checkout-redesign", "enterprise"))
		// Equal answers from both arms while the variant gets 10% of the
		// traffic: what a survey broken on the control would look like.
		s.post("checkout-redesign", scores("control", "enterprise", 1500, 86))
		s.post("checkout-redesign", scores("one-page", "enterprise", 1500, 87))
		Eventually(s.conditionReason("checkout-redesign", cxv1.ConditionSampleRatioMismatch)).Should(Equal(cxv1.ReasonResponseSharesOffWeights))
		exp := s.get("checkout-redesign")
		sr := exp.Status.Segments[0].SampleRatio
		Expect(sr).NotTo(BeNil())
		Expect(sr.Mismatch).To(BeTrue())
		Expect(sr.Shares).To(ContainSubstring("expected 90.0%"))
		Expect(condition(exp, cxv1.ConditionSampleRatioMismatch).Message).To(And(ContainSubstring("segment enterprise"), ContainSubstring("survey")))
		Eventually(func() []string { return s.eventNotes("checkout-redesign", cxv1.ConditionSampleRatioMismatch) }).Should(HaveLen(1))
		Consistently(func() int32 { return s.get("checkout-redesign").Status.CurrentStep }, 2*time.Second).
			Should(Equal(int32(1)), "a held segment does not advance, though the variant is NonInferior")
		Expect(s.get("checkout-redesign").Status.Segments[0].Variants[1].Verdict).To(Equal(cxv1.VerdictNonInferior))

		// Safety does not wait: a clear drop still rolls back.
		s.post("checkout-redesign", scores("one-page", "enterprise", 3000, 60))
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseRolledBack))
		Eventually(s.conditionReason("checkout-redesign", cxv1.ConditionSampleRatioMismatch)).Should(BeEmpty(), "an ended run holds nothing")
	})

	It("judges a run by the settings it started with, and says that an edit applies to the next run", func() {
		s := newShop()
		s.start(s.experiment("checkout-redesign", "enterprise"))
		Eventually(func() *cxv1.RunSettings { return s.get("checkout-redesign").Status.Settings }).ShouldNot(BeNil())
		Expect(s.get("checkout-redesign").Status.Settings.MaxDrop).To(Equal("3"))

		s.update("checkout-redesign", func(exp *cxv1.CXExperiment) { exp.Spec.Satisfaction.MaxDrop = "10" })
		Eventually(s.conditionReason("checkout-redesign", cxv1.ConditionSettingsChanged)).Should(Equal(cxv1.ReasonAppliesToNextRun))
		exp := s.get("checkout-redesign")
		Expect(condition(exp, cxv1.ConditionSettingsChanged).Message).To(And(ContainSubstring("maxDrop 3 -> 10"), ContainSubstring("kubectl cx retry")))
		Expect(exp.Status.Settings.MaxDrop).To(Equal("3"), "the run keeps its settings")
		Eventually(func() []string { return s.eventNotes("checkout-redesign", cxv1.ConditionSettingsChanged) }).Should(HaveLen(1))

		// An 8-point drop is within the edited maxDrop of 10 but beyond the
		// run's 3: the run rolls it back.
		s.post("checkout-redesign", scores("control", "enterprise", firstStepControl(1500), 86))
		s.post("checkout-redesign", scores("one-page", "enterprise", 1500, 78))
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseRolledBack))
		Expect(s.get("checkout-redesign").Status.Rollbacks[0].Reason).To(Equal(cxv1.RollbackInferior))

		// Retrying starts a run with the edited settings.
		s.annotate("checkout-redesign", cxv1.AnnotationRetry)
		Eventually(func() string {
			if st := s.get("checkout-redesign").Status.Settings; st != nil && s.get("checkout-redesign").Status.Run == 2 {
				return st.MaxDrop
			}
			return ""
		}).Should(Equal("10"))
		Eventually(s.conditionReason("checkout-redesign", cxv1.ConditionSettingsChanged)).Should(BeEmpty())
	})

	It("records settings and epochs for a run an older version started, and carries it to the end", func() {
		s := newShop()
		s.start(s.experiment("checkout-redesign", "enterprise"))
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseProgressing))
		// An upgrade: the older version's manager stops, leaving a status
		// without settings or epochs, and the new one starts. A status-only
		// edit triggers no reconcile (the predicates filter it), so the
		// manager is down while status is rewritten, as in a real upgrade;
		// the new manager's first list reconciles the run.
		stopManager()
		Eventually(func() error {
			exp := s.get("checkout-redesign")
			exp.Status.Settings = nil
			for i := range exp.Status.Segments {
				exp.Status.Segments[i].Epoch, exp.Status.Segments[i].Epochs = 0, nil
			}
			return k8s.Status().Update(ctx, exp)
		}).Should(Succeed())
		Expect(s.get("checkout-redesign").Status.Settings).To(BeNil())
		startManager()
		Eventually(func() *cxv1.RunSettings { return s.get("checkout-redesign").Status.Settings }).ShouldNot(BeNil(), "the run records the settings it is judged by")
		Eventually(func() int32 { return s.get("checkout-redesign").Status.Segments[0].Epoch }).Should(BeNumerically(">", 0))
		s.post("checkout-redesign", scores("control", "enterprise", firstStepControl(1500), 86))
		s.post("checkout-redesign", scores("one-page", "enterprise", 1500, 87))
		Eventually(s.phase("checkout-redesign")).Should(Equal(cxv1.PhaseSucceeded))
	})
})
