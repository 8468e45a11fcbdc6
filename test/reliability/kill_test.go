package reliability

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/test/utils"
)

// managerSet holds the running manager processes and their collector URLs.
type managerSet struct {
	mu   sync.Mutex
	mgrs []*utils.Manager
}

func (s *managerSet) urls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range s.mgrs {
		if !m.Exited() {
			out = append(out, m.CollectorURL)
		}
	}
	return out
}

func (s *managerSet) set(ms ...*utils.Manager) {
	s.mu.Lock()
	s.mgrs = ms
	s.mu.Unlock()
}

// rollout runs the seeded scenario to its end. With kills > 0 the manager
// is SIGKILLed that many times at random points and restarted at once.
// It returns the outcome and checks the invariants.
func rollout(seed uint64, kills int, minDuration time.Duration) (string, int) {
	ns, token := shop()
	mgr, err := utils.StartManager(ctx, utils.ManagerOptions{Kubeconfig: cp.Kubeconfig})
	Expect(err).NotTo(HaveOccurred())
	set := &managerSet{}
	set.set(mgr)
	logOnFailure(mgr) // restarts append to the same log
	defer func() {
		for _, m := range set.mgrs {
			m.Stop()
		}
	}()

	exp := experiment(ns, minDuration)
	Expect(k8s.Create(ctx, exp)).To(Succeed())
	Eventually(func() cxv1.ExperimentPhase { return getExp(ns).Status.Phase }).Should(Equal(cxv1.PhaseProgressing))

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	mon := newMonitor(ns)
	go mon.run(runCtx)
	f := newFeeder(ns, token, seed, set.urls)
	fed := make(chan struct{})
	go func() { defer close(fed); f.run(runCtx, mon.sample) }()

	killed := 0
	rnd := rand.New(rand.NewPCG(seed, 99))
	for killed < kills && !getExp(ns).Status.Phase.Terminal() {
		// Let it work for a random while (from a few ms to 1.5 s), then SIGKILL.
		time.Sleep(time.Duration(rnd.IntN(1500)) * time.Millisecond) // the fault's random timing is the point
		cur := set.mgrs[0]
		cur.Kill()
		killed++
		next, err := utils.StartManager(ctx, utils.ManagerOptions{Kubeconfig: cp.Kubeconfig, LogPath: cur.LogPath})
		Expect(err).NotTo(HaveOccurred())
		set.set(next)
	}
	Eventually(func() bool { return ended(ns) }, 3*time.Minute).Should(BeTrue(), describe(ns, f))
	finish(f, fed, stop)

	final := getExp(ns)
	mon.checkMonotone([]int32{10, 30, 50})
	f.checkCounted()
	GinkgoWriter.Printf("seed %d, %d kills: %s; acknowledged %d responses (%d requests, %d retries), tally %d\n",
		seed, killed, outcome(final), f.acked.Load(), f.attempts.Load(), f.retries.Load(), tallyTotal(ns))
	AddReportEntry("rollout", map[string]any{"kills": killed, "acked": f.acked.Load(), "requests": f.attempts.Load(), "retries": f.retries.Load(), "outcome": outcome(final)})
	return outcome(final), killed
}

var _ = Describe("Controller SIGKILLed during a rollout", func() {
	It("resumes at the right step, keeps every acknowledged response, and ends like an uninterrupted run", func() {
		const seed = 7
		want, _ := rollout(seed, 0, 4*time.Second)
		Expect(want).To(Equal("Succeeded enterprise/one-page=RolledBack new-customers/one-page=Promoted"),
			"the scenario itself: enterprise regresses, new customers do not")
		// Steps of 15s leave room for 22 kill-and-restart cycles.
		got, kills := rollout(seed, 22, 15*time.Second)
		Expect(kills).To(BeNumerically(">=", 20))
		Expect(got).To(Equal(want))
	})
})
