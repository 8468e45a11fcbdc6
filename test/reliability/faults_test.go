package reliability

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/test/utils"
)

// isLeader reads controller-runtime's leader gauge from a manager.
func isLeader(m *utils.Manager) bool {
	fams, err := m.Metrics()
	if err != nil {
		return false
	}
	f, ok := fams["leader_election_master_status"]
	if !ok {
		return false
	}
	for _, mt := range f.GetMetric() {
		if mt.GetGauge().GetValue() == 1 {
			return true
		}
	}
	return false
}

var _ = Describe("Two manager replicas with leader election", func() {
	It("fails over when the leader is killed mid-step, with no lost or double-counted response on either collector", func() {
		ns, token := shop()
		// Short enough for a quick failover, long enough that a loaded
		// machine does not make the leader miss its renewal (a replica that
		// loses its lease exits; with 4s/3s both replicas once did, at a
		// load average above 14, renewals timing out after 1.5 s).
		args := []string{"--leader-election-namespace=default", "--leader-elect-lease-duration=8s", "--leader-elect-renew-deadline=6s", "--leader-elect-retry-period=1s"}
		a, err := utils.StartManager(ctx, utils.ManagerOptions{Kubeconfig: cp.Kubeconfig, LeaderElect: true, Args: args})
		Expect(err).NotTo(HaveOccurred())
		b, err := utils.StartManager(ctx, utils.ManagerOptions{Kubeconfig: cp.Kubeconfig, LeaderElect: true, Args: args})
		Expect(err).NotTo(HaveOccurred())
		set := &managerSet{}
		set.set(a, b)
		defer func() { a.Stop(); b.Stop() }()
		logOnFailure(a, b)
		Eventually(func() bool { return isLeader(a) != isLeader(b) }).Should(BeTrue(), "exactly one leader")

		Expect(k8s.Create(ctx, experiment(ns, 6*time.Second))).To(Succeed())
		Eventually(func() cxv1.ExperimentPhase { return getExp(ns).Status.Phase }).Should(Equal(cxv1.PhaseProgressing))
		runCtx, stop := context.WithCancel(ctx)
		defer stop()
		mon := newMonitor(ns)
		go mon.run(runCtx)
		f := newFeeder(ns, token, 11, set.urls) // alternates between both collectors
		fed := make(chan struct{})
		go func() { defer close(fed); f.run(runCtx, mon.sample) }()

		// Step 2 needs enough answers for a verdict in both segments: allow
		// for a loaded machine, where the feeder is slower.
		Eventually(func() int32 { return getExp(ns).Status.CurrentStep }, 3*time.Minute).Should(Equal(int32(2)), describe(ns, f))
		Expect([]bool{a.Exited(), b.Exited()}).To(Equal([]bool{false, false}), "both replicas run before the leader is killed (a replica that lost its lease exits)")
		leader, follower := a, b
		if isLeader(b) {
			leader, follower = b, a
		}
		stepBefore := getExp(ns).Status.CurrentStep
		leader.Kill()
		Eventually(func() bool { return isLeader(follower) }, 30*time.Second).Should(BeTrue(), "the other replica takes over")
		Expect(getExp(ns).Status.CurrentStep).To(BeNumerically(">=", stepBefore), "no step is undone by the failover")

		Eventually(func() bool { return ended(ns) }, 3*time.Minute).Should(BeTrue(), describe(ns, f))
		finish(f, fed, stop)
		mon.checkMonotone([]int32{10, 30, 50})
		Expect(outcome(getExp(ns))).To(Equal("Succeeded enterprise/one-page=RolledBack new-customers/one-page=Promoted"))
		f.checkCounted()
		GinkgoWriter.Printf("failover: acknowledged %d responses over both collectors (%d requests, %d retries), tally %d\n",
			f.acked.Load(), f.attempts.Load(), f.retries.Load(), tallyTotal(ns))
	})
})

var _ = Describe("API server unavailable", func() {
	// outage cuts the manager's connection to the API server for 30s.
	run := func(cutWhen func(ns string) bool, what string) {
		ns, token := shop()
		proxy, err := utils.StartProxy(cp.APIServerAddr())
		Expect(err).NotTo(HaveOccurred())
		defer proxy.Close()
		kc, err := cp.KubeconfigVia(proxy.Addr)
		Expect(err).NotTo(HaveOccurred())
		mgr, err := utils.StartManager(ctx, utils.ManagerOptions{Kubeconfig: kc})
		Expect(err).NotTo(HaveOccurred())
		defer mgr.Stop()
		logOnFailure(mgr)

		Expect(k8s.Create(ctx, experiment(ns, 6*time.Second))).To(Succeed())
		Eventually(func() cxv1.ExperimentPhase { return getExp(ns).Status.Phase }).Should(Equal(cxv1.PhaseProgressing))
		runCtx, stop := context.WithCancel(ctx)
		defer stop()
		mon := newMonitor(ns)
		go mon.run(runCtx)
		f := newFeeder(ns, token, 23, func() []string { return []string{mgr.CollectorURL} })
		fed := make(chan struct{})
		go func() { defer close(fed); f.run(runCtx, mon.sample) }()

		Eventually(func() bool { return cutWhen(ns) }, 3*time.Minute).Should(BeTrue(), describe(ns, f))
		before := getExp(ns).Status
		proxy.Cut()
		cutAt := time.Now()
		GinkgoWriter.Printf("%s: API server cut at step %d (%s)\n", what, before.CurrentStep, outcome(getExp(ns)))
		Consistently(func() int32 { return getExp(ns).Status.CurrentStep }, 30*time.Second).Should(Equal(before.CurrentStep),
			"nothing moves without the API server")
		Expect(mgr.Exited()).To(BeFalse(), "the manager survives the outage")
		Expect(proxy.Restore()).To(Succeed())
		GinkgoWriter.Printf("%s: API server back after %s\n", what, time.Since(cutAt).Round(time.Second))

		Eventually(func() bool { return ended(ns) }, 3*time.Minute).Should(BeTrue(), describe(ns, f))
		finish(f, fed, stop)
		mon.checkMonotone([]int32{10, 30, 50})
		final := getExp(ns)
		Expect(outcome(final)).To(Equal("Succeeded enterprise/one-page=RolledBack new-customers/one-page=Promoted"))
		Expect(final.Status.Rollbacks).To(HaveLen(1), "the rollback is recorded once")
		f.checkCounted()
		GinkgoWriter.Printf("%s: acknowledged %d, tally %d, %d retries\n", what, f.acked.Load(), tallyTotal(ns), f.retries.Load())
	}

	It("resumes a step after a 30 s outage", func() {
		run(func(ns string) bool { return getExp(ns).Status.CurrentStep == 2 }, "during a step")
	})

	It("completes a rollback interrupted by a 30 s outage exactly once", func() {
		// Cut as soon as the enterprise variant's answers have turned bad
		// (the scenario drops it after its 300th answer), while the decision
		// is being made.
		run(func(ns string) bool {
			for _, s := range getExp(ns).Status.Segments {
				if s.Name == "enterprise" {
					for _, v := range s.Variants {
						if v.Name == "one-page" && (v.Responses > 320 || v.State == cxv1.StateRolledBack) {
							return true
						}
					}
				}
			}
			return false
		}, "during a rollback")
	})
})
