package wire

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rapport-dev/rapport/test/utils"
)

// TraefikVersion is the Traefik release hack/traefik-bin.sh builds (keep in
// step with TRAEFIK_VERSION there and in the Makefile).
const TraefikVersion = "v3.6.12"

// TraefikControllerName is the GatewayClass controllerName Traefik serves.
const TraefikControllerName = "traefik.io/gateway-controller"

// TraefikBinary returns TRAEFIK_BIN when set, else ./bin/traefik-<version>
// when hack/traefik-bin.sh has built it. It never builds (that takes
// minutes): the error says how.
func TraefikBinary() (string, error) {
	if p := os.Getenv("TRAEFIK_BIN"); p != "" {
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			return "", fmt.Errorf("TRAEFIK_BIN=%s is not a file", p)
		}
		return p, nil
	}
	p := filepath.Join(utils.RepoRoot(), "bin", "traefik-"+TraefikVersion)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no Traefik binary at %s: run `make traefik-bin` (builds Traefik %s from the Go module proxy, 6-15 min once) or set TRAEFIK_BIN", p, TraefikVersion)
	}
	return p, nil
}

// ProxyOptions configures the proxy process.
type ProxyOptions struct {
	// Kubeconfig of the control plane the proxy watches.
	Kubeconfig string
	// Listen is the address of the Gateway's HTTP listener; its port must
	// be the listener's port.
	Listen string
	// Ping is the address of the proxy's health endpoint (GET /ping).
	Ping string
	// ProvidersThrottle is Traefik's providers.providersThrottleDuration,
	// e.g. "100ms": after it applies a configuration, Traefik waits this
	// long before it applies the next one. "" keeps Traefik's default (2s).
	ProvidersThrottle string
	// Args are extra flags.
	Args []string
	// LogPath receives the proxy's output (default: a temp file).
	LogPath string
	// Command, when set, runs another Gateway API implementation instead of
	// Traefik: a shell command run with KUBECONFIG set, which must serve the
	// Gateway's listener on Listen (see docs/operations.md).
	Command string
}

// Proxy is a running Gateway API proxy.
type Proxy struct {
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error
	// LogPath holds its output.
	LogPath string
	// Args are the flags it was started with.
	Args []string
}

// StartProxy starts Traefik (or o.Command) and waits until it answers on
// Ping (Traefik) or accepts connections on Listen (another command).
func StartProxy(ctx context.Context, o ProxyOptions) (*Proxy, error) {
	logPath := o.LogPath
	if logPath == "" {
		f, err := os.CreateTemp("", "rapport-proxy-*.log")
		if err != nil {
			return nil, err
		}
		logPath = f.Name()
		f.Close()
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	var args []string
	if o.Command != "" {
		cmd = exec.Command("/bin/sh", "-c", o.Command)
		args = []string{o.Command}
	} else {
		bin, err := TraefikBinary()
		if err != nil {
			logf.Close()
			return nil, err
		}
		args = []string{
			"--entryPoints.web.address=" + o.Listen,
			"--entryPoints.traefik.address=" + o.Ping,
			"--ping=true", "--ping.entryPoint=traefik",
			"--providers.kubernetesgateway=true",
			"--providers.kubernetesgateway.statusAddress.ip=" + strings.Split(o.Listen, ":")[0],
			"--global.checkNewVersion=false", "--global.sendAnonymousUsage=false",
			"--log.level=ERROR",
		}
		if o.ProvidersThrottle != "" {
			args = append(args, "--providers.providersThrottleDuration="+o.ProvidersThrottle)
		}
		args = append(args, o.Args...)
		cmd = exec.Command(bin, args...)
	}
	cmd.Env = append(os.Environ(), "KUBECONFIG="+o.Kubeconfig)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that Stop reaches a shell command's children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start the proxy: %w", err)
	}
	p := &Proxy{cmd: cmd, done: make(chan struct{}), LogPath: logPath, Args: args}
	go func() {
		p.exitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	probe := "http://" + o.Ping + "/ping"
	if o.Command != "" {
		probe = "http://" + o.Listen + "/"
	}
	if err := p.waitReady(ctx, probe, time.Minute); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

func (p *Proxy) waitReady(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-p.done:
			return fmt.Errorf("the proxy exited: %v; log %s", p.exitErr, p.LogPath)
		default:
		}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			// Any answer from another implementation (404 without routes);
			// 200 from Traefik's ping.
			if resp.StatusCode == http.StatusOK || !strings.HasSuffix(url, "/ping") {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.Join(fmt.Errorf("the proxy did not answer %s in %s; log %s", url, timeout, p.LogPath), ctx.Err())
		}
		time.Sleep(50 * time.Millisecond) // polling a process's health endpoint
	}
}

// Stop ends the proxy (SIGTERM, SIGKILL after 10s) and waits.
func (p *Proxy) Stop() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Exited reports whether the proxy has ended.
func (p *Proxy) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}
