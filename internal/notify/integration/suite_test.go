// Package integration tests the notifier against a real kube-apiserver and
// etcd (envtest), in a controller-runtime manager as cmd/main.go runs it,
// delivering to local HTTP servers standing in for Slack's Web API, Teams
// webhooks and generic webhooks (test/utils.Channels). It needs the control
// plane of `make envtest-assets`.
//
//	go test ./internal/notify/integration/ -v
package integration

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/notify"
	"github.com/rapport-dev/rapport/test/utils"
	"github.com/rapport-dev/rapport/test/utils/specs"
)

var (
	scheme  = runtime.NewScheme()
	testEnv *envtest.Environment
	cfg     *rest.Config
	// k8s is a direct (uncached) client: what the API server really holds.
	k8s      client.Client
	channels *utils.Channels
	// experimentWrites counts writes the notifier attempted on a
	// CXExperiment: it must never make one (the experiment controller owns
	// experiments and patches their status under optimistic locking).
	experimentWrites atomic.Int64
)

// globalNamespace holds the global notification configuration.
const globalNamespace = "rapport-system"

func TestNotifications(t *testing.T) {
	RegisterFailHandler(Fail)
	specs.Run(t, "Notifications envtest suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(GinkgoLogr)
	// A loaded 2-core machine: a delivery goes through a watch, a reconcile
	// and an HTTP round trip.
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(cxv1.AddToScheme(scheme)).To(Succeed())
	var err error
	testEnv, err = utils.NewEnvironment(utils.EnvironmentOptions{})
	if err != nil && !utils.InCI() {
		Skip("no control plane (run make envtest-assets): " + err.Error())
	}
	Expect(err).NotTo(HaveOccurred())
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	createNamespace(globalNamespace)
	channels = utils.StartChannels()
	DeferCleanup(channels.Close)
})

var _ = AfterSuite(func() {
	Expect(experimentWrites.Load()).To(BeZero(), "the notifier wrote a CXExperiment")
	if testEnv != nil && cfg != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// notifier is a running manager with the notifier, as cmd/main.go builds it.
type notifier struct {
	stop func()
}

// startNotifierWith starts a manager running only the notifier, with a
// short backoff so that retries are quick to observe; tune changes the
// notifier further.
func startNotifierWith(tune func(*notify.Notifier)) *notifier {
	skip := true
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: &skip},
		Logger:                 logr.Discard(),
	})
	Expect(err).NotTo(HaveOccurred())
	guarded := guardedClient{mgr.GetClient()}
	n := &notify.Notifier{
		Client:    guarded, // APIReader: the notifier's own client, as in cmd/main.go
		Namespace: globalNamespace, Timeout: 2 * time.Second, RetryBase: 200 * time.Millisecond,
		Recorder: mgr.GetEventRecorder("rapport-notifications"),
	}
	if tune != nil {
		tune(n)
	}
	Expect(n.SetupWithManager(mgr)).To(Succeed())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	// Specs time what the notifier does, not how long its informers take to
	// list on a loaded machine.
	Expect(mgr.GetCache().WaitForCacheSync(ctx)).To(BeTrue(), "the notifier's cache syncs")
	return &notifier{stop: func() { cancel(); <-done }}
}

func countExperimentWrite(obj client.Object) {
	if _, ok := obj.(*cxv1.CXExperiment); ok {
		experimentWrites.Add(1)
	}
}

// guardedClient counts any write of a CXExperiment the notifier attempts.
type guardedClient struct{ client.Client }

func (g guardedClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	countExperimentWrite(obj)
	return g.Client.Create(ctx, obj, opts...)
}

func (g guardedClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	countExperimentWrite(obj)
	return g.Client.Update(ctx, obj, opts...)
}

func (g guardedClient) Patch(ctx context.Context, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
	countExperimentWrite(obj)
	return g.Client.Patch(ctx, obj, p, opts...)
}

func (g guardedClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	countExperimentWrite(obj)
	return g.Client.Delete(ctx, obj, opts...)
}

func (g guardedClient) Status() client.SubResourceWriter { return guardedStatus{g.Client.Status()} }

type guardedStatus struct{ client.SubResourceWriter }

func (g guardedStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	countExperimentWrite(obj)
	return g.SubResourceWriter.Update(ctx, obj, opts...)
}

func (g guardedStatus) Patch(ctx context.Context, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
	countExperimentWrite(obj)
	return g.SubResourceWriter.Patch(ctx, obj, p, opts...)
}
