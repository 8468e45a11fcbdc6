// Package reliability runs Rapport's fault scenarios against a local control
// plane and the real manager binary: SIGKILLs during a rollout, leader
// failover between two replicas, API-server outages, a broken Prometheus,
// and fail-safe stops. Each scenario is scripted and repeatable (seeded).
package reliability

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/test/utils"
	"github.com/rapport-dev/rapport/test/utils/specs"
)

var (
	cp     *utils.ControlPlane
	k8s    client.Client
	scheme = runtime.NewScheme()
	ctx    context.Context
	cancel context.CancelFunc
)

func TestReliability(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(60 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	specs.Run(t, "Reliability suite")
}

var _ = BeforeSuite(func() {
	ctx, cancel = context.WithCancel(context.Background())
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(cxv1.AddToScheme(scheme)).To(Succeed())
	Expect(gwv1.Install(scheme)).To(Succeed())
	_, err := utils.ManagerBinary()
	Expect(err).NotTo(HaveOccurred())
	cp, err = utils.StartControlPlane(utils.EnvironmentOptions{})
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(cp.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	cancel()
	if cp != nil {
		Expect(cp.Stop()).To(Succeed())
	}
	Expect(utils.RemoveManagerBinary()).To(Succeed())
})
