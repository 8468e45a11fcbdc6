package reliability

import (
	"os"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/rapport-dev/rapport/internal/gctune"
	"github.com/rapport-dev/rapport/test/utils"
)

var _ = Describe("The manager's garbage-collector settings", func() {
	// gauge reads one of the Go runtime's gauges from a manager's metrics.
	gauge := func(m *utils.Manager, name string) float64 {
		fams, err := m.Metrics()
		Expect(err).NotTo(HaveOccurred())
		f, ok := fams[name]
		Expect(ok).To(BeTrue(), "%s is not among the manager's metrics", name)
		return f.GetMetric()[0].GetGauge().GetValue()
	}
	log := func(m *utils.Manager) string {
		b, err := os.ReadFile(m.LogPath)
		Expect(err).NotTo(HaveOccurred())
		return string(b)
	}

	It("runs with GOGC=400 unless the environment sets GOGC, and takes GOMEMLIMIT from it", func() {
		m, err := utils.StartManager(ctx, utils.ManagerOptions{Kubeconfig: cp.Kubeconfig, Env: []string{"GOGC=", "GOMEMLIMIT=300MiB"}})
		Expect(err).NotTo(HaveOccurred())
		Expect(gauge(m, "go_gc_gogc_percent")).To(BeEquivalentTo(gctune.DefaultGCPercent))
		Expect(gauge(m, "go_gc_gomemlimit_bytes")).To(BeEquivalentTo(300 << 20))
		Expect(log(m)).To(ContainSubstring("GOGC=400 (Rapport's default; set GOGC to change it); GOMEMLIMIT=300MiB from the environment"))
		m.Stop() // one manager at a time on the shared control plane

		own, err := utils.StartManager(ctx, utils.ManagerOptions{Kubeconfig: cp.Kubeconfig, Env: []string{"GOGC=150"}})
		Expect(err).NotTo(HaveOccurred())
		defer own.Stop()
		Expect(gauge(own, "go_gc_gogc_percent")).To(BeEquivalentTo(150))
		Expect(log(own)).To(ContainSubstring("GOGC=150 from the environment"), "the log says where GOGC came from")
	})
})
