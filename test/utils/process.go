package utils

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// ControlPlane is a local etcd + kube-apiserver with Rapport's and the
// Gateway API's CRDs, and a kubeconfig file for processes.
type ControlPlane struct {
	Env        *envtest.Environment
	Config     *rest.Config
	Kubeconfig string
	dir        string
}

// StartControlPlane starts a control plane; Stop it when done.
func StartControlPlane(opts EnvironmentOptions) (*ControlPlane, error) {
	env, err := NewEnvironment(opts)
	if err != nil {
		return nil, err
	}
	// RAPPORT_CONTROL_PLANE_LOGS=<folder> keeps etcd's and kube-apiserver's output.
	if dir := os.Getenv("RAPPORT_CONTROL_PLANE_LOGS"); dir != "" {
		for name, set := range map[string]func(io.Writer){
			"kube-apiserver": func(w io.Writer) { env.ControlPlane.GetAPIServer().Out, env.ControlPlane.GetAPIServer().Err = w, w },
			"etcd": func(w io.Writer) {
				if env.ControlPlane.Etcd == nil {
					env.ControlPlane.Etcd = &envtest.Etcd{}
				}
				env.ControlPlane.Etcd.Out, env.ControlPlane.Etcd.Err = w, w
			},
		} {
			f, err := os.Create(filepath.Join(dir, name+".log"))
			if err != nil {
				return nil, err
			}
			set(f)
		}
	}
	if _, err := env.Start(); err != nil {
		return nil, fmt.Errorf("start the control plane: %w", err)
	}
	cp := &ControlPlane{Env: env}
	user, err := env.AddUser(envtest.User{Name: "rapport-test", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	cp.Config = user.Config()
	kc, err := user.KubeConfig()
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	if cp.dir, err = os.MkdirTemp("", "rapport-cp-"); err != nil {
		_ = env.Stop()
		return nil, err
	}
	cp.Kubeconfig = filepath.Join(cp.dir, "kubeconfig")
	if err := os.WriteFile(cp.Kubeconfig, kc, 0o600); err != nil {
		_ = cp.Stop()
		return nil, err
	}
	return cp, nil
}

// Stop stops the control plane and removes its files.
func (cp *ControlPlane) Stop() error {
	err := cp.Env.Stop()
	if cp.dir != "" {
		_ = os.RemoveAll(cp.dir)
	}
	return err
}

// ManagerBinary builds ./cmd into a folder of its own once per process and
// returns its path (tests use the real binary, as a Deployment would). Not
// into ./bin: checkouts may share it (worktrees), and a binary of another
// checkout would be tested in place of this one's.
var ManagerBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "rapport-manager-test-")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "manager")
	cmd := exec.Command("go", "build", "-o", out, "./cmd")
	cmd.Dir = RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd: %v: %s", err, b)
	}
	return out, nil
})

// DownloadModules runs `go mod download` in the repository, so that a
// later `go build` works without network (inside a private network
// namespace). Errors are left to that build to report.
func DownloadModules() {
	cmd := exec.Command("go", "mod", "download")
	cmd.Dir = RepoRoot()
	_ = cmd.Run()
}

// RemoveManagerBinary deletes what ManagerBinary built; suites call it when
// they end.
func RemoveManagerBinary() error {
	bin, err := ManagerBinary()
	if err != nil {
		return nil
	}
	return os.RemoveAll(filepath.Dir(bin))
}

// ManagerOptions configures a manager process.
type ManagerOptions struct {
	Kubeconfig  string
	LeaderElect bool
	// Args are extra flags.
	Args []string
	// LogPath receives stdout and stderr (default: a temp file).
	LogPath string
	// Binary is the manager binary (default: ManagerBinary()).
	Binary string
	// Addrs fixes the manager's listen addresses (default: free loopback
	// ports). Suites in a private network namespace use fixed ones.
	Addrs *ManagerAddrs
	// Env is added to the manager's environment (NAME=value), after the
	// test process's own.
	Env []string
}

// ManagerAddrs are a manager's listen addresses (host:port).
type ManagerAddrs struct {
	Collector, Metrics, Probe string
}

// Manager is a running manager process.
type Manager struct {
	Cmd                                *exec.Cmd
	CollectorURL, MetricsURL, ProbeURL string
	LogPath                            string
	done                               chan struct{}
	exitErr                            error
}

// StartManager starts the manager binary and waits until it is ready.
func StartManager(ctx context.Context, o ManagerOptions) (*Manager, error) {
	bin, err := o.Binary, error(nil)
	if bin == "" {
		if bin, err = ManagerBinary(); err != nil {
			return nil, err
		}
	}
	var addrs [3]string
	if a := o.Addrs; a != nil {
		addrs = [3]string{a.Collector, a.Metrics, a.Probe}
	} else {
		for i := range addrs {
			if addrs[i], err = FreeAddr(); err != nil {
				return nil, err
			}
		}
	}
	m := &Manager{CollectorURL: "http://" + addrs[0], MetricsURL: "http://" + addrs[1] + "/metrics", ProbeURL: "http://" + addrs[2], done: make(chan struct{})}
	args := []string{
		"--collector-bind-address=" + addrs[0], "--collector-rate-limit=-1",
		"--metrics-bind-address=" + addrs[1], "--metrics-secure=false",
		"--health-probe-bind-address=" + addrs[2],
	}
	if o.LeaderElect {
		args = append(args, "--leader-elect")
	}
	args = append(args, o.Args...)
	m.LogPath = o.LogPath
	if m.LogPath == "" {
		f, err := os.CreateTemp("", "rapport-manager-*.log")
		if err != nil {
			return nil, err
		}
		m.LogPath = f.Name()
		f.Close()
	}
	logf, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	m.Cmd = exec.Command(bin, args...)
	m.Cmd.Env = append(append(os.Environ(), "KUBECONFIG="+o.Kubeconfig), o.Env...)
	m.Cmd.Stdout, m.Cmd.Stderr = logf, logf
	if err := m.Cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() {
		m.exitErr = m.Cmd.Wait()
		logf.Close()
		close(m.done)
	}()
	if err := m.waitReady(ctx, 60*time.Second); err != nil {
		m.Kill()
		return nil, err
	}
	return m, nil
}

func (m *Manager) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-m.done:
			return fmt.Errorf("the manager exited: %v; log %s", m.exitErr, m.LogPath)
		default:
		}
		ok := true
		for _, u := range []string{m.ProbeURL + "/readyz", m.CollectorURL + "/healthz"} {
			resp, err := http.Get(u)
			if err != nil {
				ok = false
				break
			}
			resp.Body.Close()
			ok = ok && resp.StatusCode == http.StatusOK
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the manager did not become ready in %s; log %s", timeout, m.LogPath)
		}
		time.Sleep(50 * time.Millisecond) // polling a process's HTTP probes
	}
}

// Kill sends SIGKILL and waits for the process to end.
func (m *Manager) Kill() {
	if m.Cmd.Process != nil {
		_ = m.Cmd.Process.Kill()
	}
	<-m.done
}

// Stop sends SIGTERM and waits (SIGKILL after 20s).
func (m *Manager) Stop() {
	if m.Cmd.Process != nil {
		_ = m.Cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-m.done:
	case <-time.After(20 * time.Second):
		m.Kill()
	}
}

// Exited reports whether the process has ended.
func (m *Manager) Exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// Metrics scrapes the manager's metrics endpoint.
func (m *Manager) Metrics() (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get(m.MetricsURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

// Usage is a process's resource use.
type Usage struct {
	CPU time.Duration // user + system
	RSS int64         // bytes
}

// ProcessUsage reads /proc for a pid (Linux).
func ProcessUsage(pid int) (Usage, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Usage{}, err
	}
	// Fields after the command name (which may contain spaces) in parentheses.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return Usage{}, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 22 {
		return Usage{}, errors.New("short /proc stat")
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	u := Usage{CPU: time.Duration(utime+stime) * time.Second / ticks}
	status, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		if value, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(value)[0], 10, 64)
			u.RSS = kb * 1024
		}
	}
	return u, nil
}

// KubeconfigVia writes a copy of the control plane's kubeconfig whose server
// is reached through addr (a Proxy), and returns its path.
func (cp *ControlPlane) KubeconfigVia(addr string) (string, error) {
	cfg, err := clientcmd.LoadFromFile(cp.Kubeconfig)
	if err != nil {
		return "", err
	}
	for _, c := range cfg.Clusters {
		c.Server = "https://" + addr
	}
	path := filepath.Join(cp.dir, "kubeconfig-via-"+strings.ReplaceAll(addr, ":", "-"))
	return path, clientcmd.WriteToFile(*cfg, path)
}

// APIServerAddr is the host:port of the kube-apiserver.
func (cp *ControlPlane) APIServerAddr() string {
	u, err := url.Parse(cp.Config.Host)
	if err != nil {
		return cp.Config.Host
	}
	return u.Host
}
