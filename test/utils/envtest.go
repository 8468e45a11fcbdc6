// Package utils holds helpers shared by Rapport's test suites: a local
// control plane (envtest) with Rapport's and the Gateway API's CRDs, and a
// real Prometheus server.
package utils

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// GatewayAPIModule is the Go module that ships the Gateway API CRDs; its
// version is the one in go.mod.
const GatewayAPIModule = "sigs.k8s.io/gateway-api"

// RepoRoot returns the repository's root folder.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	moduleDirOnce sync.Once
	moduleDir     string
	moduleDirErr  error
)

// GatewayAPICRDDir returns the folder of the Gateway API CRDs of the given
// channel ("standard" or "experimental") from the module cache, downloading
// the module through the Go module proxy when needed.
func GatewayAPICRDDir(channel string) (string, error) {
	moduleDirOnce.Do(func() {
		cmd := exec.Command("go", "mod", "download", "-json", GatewayAPIModule)
		cmd.Dir = RepoRoot()
		out, err := cmd.Output()
		if err != nil {
			moduleDirErr = fmt.Errorf("go mod download %s: %w", GatewayAPIModule, err)
			return
		}
		var mod struct{ Dir string }
		if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
			moduleDirErr = fmt.Errorf("go mod download %s printed no folder: %v", GatewayAPIModule, err)
			return
		}
		moduleDir = mod.Dir
	})
	if moduleDirErr != nil {
		return "", moduleDirErr
	}
	return filepath.Join(moduleDir, "config", "crd", channel), nil
}

// AssetsDir returns the folder with kube-apiserver and etcd: KUBEBUILDER_ASSETS
// when set, else ./bin/k8s/<version> built by hack/envtest-assets.sh.
func AssetsDir() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	matches, _ := filepath.Glob(filepath.Join(RepoRoot(), "bin", "k8s", "*", "kube-apiserver"))
	if len(matches) == 0 {
		return "", fmt.Errorf("no control plane found: run `make envtest-assets` (or set KUBEBUILDER_ASSETS)")
	}
	return filepath.Dir(matches[len(matches)-1]), nil
}

// EnvironmentOptions tunes NewEnvironment.
type EnvironmentOptions struct {
	// GatewayChannel is the Gateway API CRD channel to install: "experimental"
	// (default: a superset of standard, needed for HTTPRoute sessionPersistence)
	// or "standard".
	GatewayChannel string
	// Ports fixes the control plane's ports (default: envtest picks free
	// ones). Suites that run in a private network namespace (test/utils/netns)
	// use fixed ports: nothing else listens there.
	Ports *ControlPlanePorts
}

// ControlPlanePorts are the loopback ports of a control plane.
type ControlPlanePorts struct {
	APIServer, Etcd, EtcdPeer int
}

// NewEnvironment returns an envtest environment with Rapport's CRDs and the
// Gateway API CRDs installed. Call Start on it.
func NewEnvironment(opts EnvironmentOptions) (*envtest.Environment, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	channel := opts.GatewayChannel
	if channel == "" {
		channel = "experimental"
	}
	gw, err := GatewayAPICRDDir(channel)
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases"), gw},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		// A loaded 2-core machine can take longer than the default 20s.
		ControlPlaneStopTimeout: time.Minute,
	}
	if p := opts.Ports; p != nil {
		env.ControlPlane.Etcd = &envtest.Etcd{URL: &url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", p.Etcd)}}
		env.ControlPlane.Etcd.Configure().Set("listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", p.EtcdPeer))
		api := env.ControlPlane.GetAPIServer()
		api.Address, api.Port = "127.0.0.1", strconv.Itoa(p.APIServer) // its secure serving address
		return env, nil
	}
	cp, err := ControlPlaneOnFreePorts()
	if err != nil {
		return nil, err
	}
	env.ControlPlane = cp
	return env, nil
}

// ControlPlaneOnFreePorts places etcd and kube-apiserver on ports from
// FreePort. Left to itself, envtest takes them from the ephemeral range by
// listening on port 0 and closing the listener, where a connection of the
// test process can take them before the server binds.
func ControlPlaneOnFreePorts() (envtest.ControlPlane, error) {
	var addrs [3]string
	for i := range addrs {
		a, err := FreeAddr()
		if err != nil {
			return envtest.ControlPlane{}, err
		}
		addrs[i] = a
	}
	etcd := &envtest.Etcd{URL: &url.URL{Scheme: "http", Host: addrs[0]}}
	etcd.Configure().Set("listen-peer-urls", "http://"+addrs[1])
	host, port, err := net.SplitHostPort(addrs[2])
	if err != nil {
		return envtest.ControlPlane{}, err
	}
	api := &envtest.APIServer{SecureServing: envtest.SecureServing{ListenAddr: envtest.ListenAddr{Address: host, Port: port}}}
	return envtest.ControlPlane{Etcd: etcd, APIServer: api}, nil
}

// HTTPRouteGVR is the Gateway API HTTPRoute resource.
var HTTPRouteGVR = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}

// ShortName turns a test description into a DNS label for a namespace.
func ShortName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
		if b.Len() >= 40 {
			break
		}
	}
	return strings.Trim(b.String(), "-")
}

// InCI reports whether the tests run in CI (CI=true), where a missing
// dependency must fail a test rather than skip it.
func InCI() bool { return os.Getenv("CI") == "true" }
