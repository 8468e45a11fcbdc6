// Package integration tests the feedback collector against a real
// kube-apiserver and etcd (envtest), over real HTTP on loopback ports, with
// each "replica" a collector.Server with its own informer cache, as in a
// manager. It needs the control plane of `make envtest-assets`.
//
//	go test ./internal/collector/integration/ -v
//	go test ./internal/collector/integration/ -run '^$' -bench Commit -benchtime 200x
package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/collector"
	"github.com/rapport-dev/rapport/test/utils"
	"github.com/rapport-dev/rapport/test/utils/specs"
)

var (
	scheme = runtime.NewScheme()

	envOnce sync.Once
	envErr  error
	testEnv *envtest.Environment
	cfg     *rest.Config
	// k8s is a direct (uncached) client: what the API server really holds.
	k8s client.Client
)

func init() {
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := cxv1.AddToScheme(scheme); err != nil {
		panic(err)
	}
}

// startEnv starts the control plane once per test binary, for the Ginkgo
// suite and the benchmarks alike; TestMain stops it.
func startEnv() error {
	envOnce.Do(func() {
		testEnv, envErr = utils.NewEnvironment(utils.EnvironmentOptions{})
		if envErr != nil {
			return
		}
		if cfg, envErr = testEnv.Start(); envErr != nil {
			return
		}
		// Hammering tests need more than client-go's default 5 QPS.
		cfg.QPS, cfg.Burst = 500, 1000
		k8s, envErr = client.New(cfg, client.Options{Scheme: scheme})
	})
	return envErr
}

func TestMain(m *testing.M) {
	// The replicas' caches log through controller-runtime; these tests
	// read outcomes, not logs (without a logger, controller-runtime prints a
	// warning with a stack trace after 30 s).
	logf.SetLogger(logr.Discard())
	code := m.Run()
	if testEnv != nil && cfg != nil {
		if err := testEnv.Stop(); err != nil && code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func TestIntegration(t *testing.T) {
	RegisterFailHandler(Fail)
	// Waits are for informers and API round trips, which take longer than
	// Gomega's 1 s default on a loaded machine; none of them measures speed.
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(20 * time.Millisecond)
	specs.Run(t, "Feedback collector envtest suite")
}

// shared is the replica most specs post to.
var shared *replica

var _ = BeforeSuite(func() {
	Expect(startEnv()).To(Succeed())
	var err error
	shared, err = startReplica(context.Background(), collector.Options{RateLimit: -1, Log: GinkgoLogr})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { Expect(shared.stop()).To(Succeed()) })
})

// replica is one collector as a manager replica runs it: its own informer
// cache (Secrets restricted to feedback tokens, as cmd/main.go configures
// the manager) behind Client, the direct client as APIReader, and a real
// HTTP server on a loopback port.
type replica struct {
	url    string
	client client.Client
	stop   func() error
}

// replicaOption changes how a replica is built.
type replicaOption func(*replicaConfig)

type replicaConfig struct {
	wrap func(client.Client) client.Client
}

// withClient wraps the replica's cached client, e.g. to inject failures.
func withClient(wrap func(client.Client) client.Client) replicaOption {
	return func(c *replicaConfig) { c.wrap = wrap }
}

func startReplica(ctx context.Context, opts collector.Options, options ...replicaOption) (*replica, error) {
	var rc replicaConfig
	for _, o := range options {
		o(&rc)
	}
	rctx, cancel := context.WithCancel(ctx)
	c, err := cache.New(cfg, cache.Options{Scheme: scheme, ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{cxv1.LabelFeedbackToken: "true"})},
	}})
	if err != nil {
		cancel()
		return nil, err
	}
	cacheDone := make(chan struct{})
	go func() {
		defer close(cacheDone)
		_ = c.Start(rctx)
	}()
	if !c.WaitForCacheSync(rctx) {
		cancel()
		return nil, errors.New("cache did not sync")
	}
	cached, err := client.New(cfg, client.Options{Scheme: scheme, Cache: &client.CacheOptions{Reader: c}})
	if err != nil {
		cancel()
		return nil, err
	}
	opts.Client = cached
	if rc.wrap != nil {
		opts.Client = rc.wrap(cached)
	}
	opts.APIReader = k8s
	opts.Informers = c
	if opts.Log.GetSink() == nil {
		opts.Log = logr.Discard()
	}
	srv, err := collector.New(opts)
	if err != nil {
		cancel()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		return nil, err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(rctx, ln) }()
	r := &replica{url: "http://" + ln.Addr().String(), client: cached}
	r.stop = func() error {
		untouched := cacheUntouched(rctx, c)
		cancel()
		err := <-served
		<-cacheDone
		return errors.Join(untouched, err)
	}
	// The server answers once Serve runs; poll instead of sleeping.
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get(r.url + "/healthz")
		if err == nil {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			_ = r.stop()
			return nil, err
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r, nil
}

// cacheUntouched checks that the replica's cache still holds, for every
// experiment, FeedbackSource and ResponseTally, what the API server holds
// for the same resourceVersion. The collector reads them from the cache
// without copies (client.UnsafeDisableDeepCopy): a handler or a commit that
// changed one would corrupt the manager's cache for the controller too, and
// this check fails on it.
func cacheUntouched(ctx context.Context, c cache.Cache) error {
	exps := &cxv1.CXExperimentList{}
	if err := c.List(ctx, exps, client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	srcs := &cxv1.FeedbackSourceList{}
	if err := c.List(ctx, srcs, client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	tallies := &cxv1.ResponseTallyList{}
	if err := c.List(ctx, tallies, client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	errs := append(cachedAsLive(ctx, exps.Items), cachedAsLive(ctx, srcs.Items)...)
	return errors.Join(append(errs, cachedAsLive(ctx, tallies.Items)...)...)
}

// cachedAsLive compares each cached object (all but its type and managed
// fields) with the API server's, when that still has the same
// resourceVersion.
func cachedAsLive[T any, P interface {
	*T
	client.Object
}](ctx context.Context, items []T) []error {
	var errs []error
	for i := range items {
		cached, live := P(&items[i]), P(new(T))
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(cached), live); err != nil {
			continue // deleted since, or unreadable: nothing to compare
		}
		if live.GetResourceVersion() != cached.GetResourceVersion() {
			continue // changed since; the cache will catch up
		}
		if d := cmp.Diff(live, cached, cmpopts.IgnoreTypes(metav1.TypeMeta{}), cmpopts.IgnoreFields(metav1.ObjectMeta{}, "ManagedFields")); d != "" {
			errs = append(errs, fmt.Errorf("the cache's %T %s differs from the API server's at the same resourceVersion %s: something changed an object read without a copy (-API server +cache):\n%s",
				cached, client.ObjectKeyFromObject(cached), live.GetResourceVersion(), d))
		}
	}
	return errs
}
