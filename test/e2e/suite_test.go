// Package e2e sends real HTTP requests through a conformant Gateway API
// implementation (Traefik) while Rapport runs experiments, and checks on the
// wire what the other suites check on objects: each segment split by the
// step weight, everyone else on the control, rollbacks, tags, stickiness,
// deletion and the operator's fail-safe, the parent-rule and replica modes.
//
// The suite runs itself again inside a private network namespace
// (test/utils/netns), where it starts one control plane (etcd and
// kube-apiserver), Traefik, the real manager binary and small variant
// backends, all on fixed ports: nothing listens outside the namespace and
// nothing outlives it. Each spec works in its own namespace. Where the
// namespace cannot be created, the suite fails with the reason under CI=true
// and skips with it elsewhere. docs/development.md explains it; to verify
// another Gateway API implementation, see docs/operations.md.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/test/utils"
	"github.com/rapport-dev/rapport/test/utils/netns"
	"github.com/rapport-dev/rapport/test/utils/specs"
	"github.com/rapport-dev/rapport/test/utils/wire"
)

// Fixed addresses inside the private network namespace.
const (
	apiServerPort = 6443
	etcdPort      = 2379
	etcdPeerPort  = 2380
	// The Gateway's listener; the proxy's entry point listens on it.
	listenPort = 8000
	pingAddr   = "127.0.0.1:8080"
	// The manager.
	collectorAddr = "127.0.0.1:8082"
	metricsAddr   = "127.0.0.1:8083"
	probeAddr     = "127.0.0.1:8081"
)

// Environment variables that let the suite verify another Gateway API
// implementation (docs/operations.md).
const (
	// envGatewayCommand runs this shell command instead of Traefik.
	envGatewayCommand = "RAPPORT_E2E_GATEWAY_COMMAND"
	// envGatewayController is the controllerName of its GatewayClass.
	envGatewayController = "RAPPORT_E2E_GATEWAY_CONTROLLER"
)

var (
	// unavailable says why the suite cannot run on this machine.
	unavailable error

	ctx      context.Context
	cancel   context.CancelFunc
	scheme   = runtime.NewScheme()
	cp       *utils.ControlPlane
	k8s      client.Client
	proxy    *wire.Proxy
	gateway  wire.Gateway
	features wire.Features
	// mgr is the running manager; specs that stop it start another.
	mgr        *utils.Manager
	managerBin string
	// customers send requests through the proxy.
	customers *wire.Client
	backends  []*wire.Backend
	logDir    string
)

func TestMain(m *testing.M) {
	if netns.Inside() {
		if err := netns.Setup(); err != nil {
			unavailable = fmt.Errorf("configure the private network namespace: %w", err)
		}
		os.Exit(m.Run())
	}
	utils.DownloadModules() // the namespace has no network; BeforeSuite builds ./cmd there
	code, err := netns.Reexec(os.Args[1:])
	if err == nil {
		os.Exit(code)
	}
	// Run here only to report why, as a failure in CI and a skip elsewhere.
	unavailable = err
	os.Exit(m.Run())
}

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(90 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	specs.Run(t, "E2E suite: real traffic through a Gateway API proxy")
}

// prerequisite fails the suite in CI and skips it elsewhere, with the reason.
func prerequisite(err error) {
	if err == nil {
		return
	}
	if utils.InCI() {
		Fail(fmt.Sprintf("the e2e suite cannot run: %v", err))
	}
	Skip(fmt.Sprintf("the e2e suite cannot run: %v (under CI=true this fails)", err))
}

var _ = BeforeSuite(func() {
	prerequisite(unavailable)
	var err error
	if os.Getenv(envGatewayCommand) == "" {
		_, err := wire.TraefikBinary()
		prerequisite(err)
	}
	_, err = utils.AssetsDir()
	prerequisite(err)
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter)))
	ctx, cancel = context.WithCancel(context.Background())
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(cxv1.AddToScheme(scheme)).To(Succeed())
	Expect(gwv1.Install(scheme)).To(Succeed())
	Expect(appsv1.AddToScheme(scheme)).To(Succeed())

	logDir, err = os.MkdirTemp("", "rapport-e2e-")
	Expect(err).NotTo(HaveOccurred())
	By("building the manager from ./cmd")
	managerBin = filepath.Join(logDir, "manager")
	build := exec.Command("go", "build", "-o", managerBin, "./cmd")
	build.Dir = utils.RepoRoot()
	out, err := build.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "go build ./cmd (inside the private network namespace, so from the module cache only): %s", out)

	By("starting etcd and kube-apiserver with the Gateway API experimental-channel CRDs")
	cp, err = utils.StartControlPlane(utils.EnvironmentOptions{
		Ports: &utils.ControlPlanePorts{APIServer: apiServerPort, Etcd: etcdPort, EtcdPeer: etcdPeerPort},
	})
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(cp.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	listen := fmt.Sprintf("%s:%d", netns.Host, listenPort)
	gateway = wire.Gateway{ClassName: "e2e", ControllerName: wire.TraefikControllerName, Namespace: "gateway-system", Name: "shop", Port: listenPort}
	if c := os.Getenv(envGatewayController); c != "" {
		gateway.ControllerName = c
	}
	By("starting the proxy (" + gateway.ControllerName + ")")
	proxy, err = wire.StartProxy(ctx, wire.ProxyOptions{
		Kubeconfig: cp.Kubeconfig, Listen: listen, Ping: pingAddr,
		ProvidersThrottle: proxyThrottle, Command: os.Getenv(envGatewayCommand),
		LogPath: filepath.Join(logDir, "proxy.log"),
	})
	Expect(err).NotTo(HaveOccurred())
	features, err = gateway.Install(ctx, k8s)
	Expect(err).NotTo(HaveOccurred())
	GinkgoWriter.Printf("gateway %s supports: %v\n", gateway.ControllerName, features)
	customers = wire.NewClient(listen, 8)

	By("starting the variant backends on " + netns.Host)
	for name, port := range backendPorts {
		b, err := wire.StartBackend(name, fmt.Sprintf("%s:%d", netns.Host, port), name)
		Expect(err).NotTo(HaveOccurred())
		backends = append(backends, b)
	}

	By("starting the manager")
	startManager()
})

// proxyThrottle is Traefik's providers.providersThrottleDuration in the
// suite: its default (2s) would only make the suite slower (see
// docs/benchmarks.md, time to safety on the wire).
const proxyThrottle = "100ms"

// startManager starts the manager binary on the fixed addresses.
func startManager() {
	GinkgoHelper()
	var err error
	mgr, err = utils.StartManager(ctx, utils.ManagerOptions{
		Kubeconfig: cp.Kubeconfig, Binary: managerBin,
		Addrs:   &utils.ManagerAddrs{Collector: collectorAddr, Metrics: metricsAddr, Probe: probeAddr},
		LogPath: filepath.Join(logDir, "manager.log"),
	})
	Expect(err).NotTo(HaveOccurred())
}

var _ = AfterSuite(func() {
	if cancel == nil {
		return // skipped
	}
	if mgr != nil {
		mgr.Stop()
	}
	if proxy != nil {
		proxy.Stop()
	}
	for _, b := range backends {
		b.Close()
	}
	cancel()
	if cp != nil {
		Expect(cp.Stop()).To(Succeed())
	}
	if keepLogs || os.Getenv("RAPPORT_E2E_KEEP_LOGS") != "" {
		fmt.Printf("e2e: the manager's and the proxy's logs are kept in %s\n", logDir)
		return
	}
	_ = os.RemoveAll(logDir)
})

// keepLogs is set when a spec fails: the logs then outlive the suite.
var keepLogs bool

// ReportAfterEach points at the logs of the processes when a spec fails.
var _ = ReportAfterEach(func(r SpecReport) {
	if r.Failed() && logDir != "" {
		keepLogs = true
		AddReportEntry("logs", fmt.Sprintf("manager, proxy: %s (kept after the suite)", logDir))
	}
})
