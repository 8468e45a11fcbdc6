package controller

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/collector"
	"github.com/rapport-dev/rapport/internal/measure"
	collectorsource "github.com/rapport-dev/rapport/internal/measure/collector"
	promsource "github.com/rapport-dev/rapport/internal/measure/prometheus"
	"github.com/rapport-dev/rapport/test/utils"
	"github.com/rapport-dev/rapport/test/utils/specs"
)

var (
	testEnv *envtest.Environment
	cfg     *rest.Config
	k8s     client.Client
	scheme  = runtime.NewScheme()
	ctx     context.Context
	cancel  context.CancelFunc

	// mgrStop stops the running manager; restartManager replaces it.
	mgrStop context.CancelFunc
	mgrDone chan struct{}
	// collectorURL is the base URL of the running collector.
	collectorURL string
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	specs.Run(t, "Controller suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, cancel = context.WithCancel(context.Background())
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(cxv1.AddToScheme(scheme)).To(Succeed())
	Expect(gwv1.Install(scheme)).To(Succeed())
	Expect(apiextensionsv1.AddToScheme(scheme)).To(Succeed())

	var err error
	testEnv, err = utils.NewEnvironment(utils.EnvironmentOptions{})
	Expect(err).NotTo(HaveOccurred())
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	startManager()
})

var _ = AfterSuite(func() {
	stopManager()
	cancel()
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// startManager runs a manager like cmd/main.go does: the three controllers
// and the feedback collector on a loopback port.
func startManager() {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{cxv1.LabelFeedbackToken: "true"})},
		}},
		Controller: configController(),
	})
	Expect(err).NotTo(HaveOccurred())
	addr, err := utils.FreeAddr()
	Expect(err).NotTo(HaveOccurred())
	srv, err := collector.New(collector.Options{Addr: addr, Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), RateLimit: -1,
		Log: ctrl.Log.WithName("collector")})
	Expect(err).NotTo(HaveOccurred())
	Expect(mgr.Add(srv)).To(Succeed())
	collectorURL = "http://" + addr

	Expect((&CXExperimentReconciler{
		Client: faultyClient(mgr.GetClient()), APIReader: mgr.GetAPIReader(), Scheme: mgr.GetScheme(),
		Recorder: mgr.GetEventRecorder("rapport"), Clock: clock.RealClock{},
		Collector: &collectorsource.Source{Reader: mgr.GetClient()},
		Prometheus: func(q cxv1.PrometheusQuery, token string) (measure.Source, error) {
			return promsource.NewSource(q, token)
		},
		Guardrails: promsource.NewGuardrails(),
		GatewayAPI: true,
	}).SetupWithManager(mgr)).To(Succeed())
	Expect((&ValidationReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr)).To(Succeed())

	mctx, stop := context.WithCancel(ctx)
	mgrStop, mgrDone = stop, make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(mgrDone)
		Expect(mgr.Start(mctx)).To(Succeed())
	}()
	Eventually(func() error { return ping(collectorURL) }).Should(Succeed())
}

func stopManager() {
	if mgrStop != nil {
		mgrStop()
		<-mgrDone
		mgrStop = nil
	}
}

// restartManager stops the manager (all in-memory state is lost) and starts a new one.
func restartManager() {
	stopManager()
	startManager()
}
