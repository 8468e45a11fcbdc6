package utils

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"
)

// PrometheusBinEnv names the environment variable holding the path of the
// Prometheus server binary (the Makefile sets it from hack/prometheus-bin.sh).
const PrometheusBinEnv = "PROMETHEUS_BIN"

// ExporterJob is the scrape job of the in-process exporter.
const ExporterJob = "exporter"

var (
	prometheusBinOnce sync.Once
	prometheusBin     string
	prometheusBinErr  error
)

// PrometheusBinary returns the path of a Prometheus server binary:
// $PROMETHEUS_BIN when set (it must then be executable), else what
// hack/prometheus-bin.sh prints (it looks in PATH and /usr/bin and installs
// Debian's prometheus package when there is none).
func PrometheusBinary() (string, error) {
	prometheusBinOnce.Do(func() {
		prometheusBin, prometheusBinErr = findPrometheusBinary()
	})
	return prometheusBin, prometheusBinErr
}

func findPrometheusBinary() (string, error) {
	if bin := os.Getenv(PrometheusBinEnv); bin != "" {
		if err := checkExecutable(bin); err != nil {
			return "", fmt.Errorf("%s=%s: %w", PrometheusBinEnv, bin, err)
		}
		return bin, nil
	}
	script := filepath.Join(RepoRoot(), "hack", "prometheus-bin.sh")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, script)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s is unset and %s failed: %w: %s", PrometheusBinEnv, script, err, strings.TrimSpace(stderr.String()))
	}
	lines := strings.Fields(string(out))
	if len(lines) == 0 {
		return "", fmt.Errorf("%s is unset and %s printed no path", PrometheusBinEnv, script)
	}
	bin := lines[len(lines)-1]
	if err := checkExecutable(bin); err != nil {
		return "", fmt.Errorf("%s printed %s: %w", script, bin, err)
	}
	return bin, nil
}

func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}

// SkipOrFail is the part of testing.TB (and of Ginkgo's GinkgoT()) that
// PrometheusBinaryOrSkip uses.
type SkipOrFail interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// PrometheusBinaryOrSkip returns PrometheusBinary(). When there is none the
// test fails if CI=true (a CI run must not silently skip the real-server
// tests) and is skipped with the reason otherwise.
func PrometheusBinaryOrSkip(t SkipOrFail) string {
	t.Helper()
	return binaryOrSkip(t, PrometheusBinary)
}

func binaryOrSkip(t SkipOrFail, find func() (string, error)) string {
	t.Helper()
	bin, err := find()
	if err == nil {
		return bin
	}
	msg := fmt.Sprintf("no Prometheus server binary: %v (set %s, or run `make prometheus-bin`)", err, PrometheusBinEnv)
	if InCI() {
		t.Fatalf("%s; CI=true, so this is a failure rather than a skip", msg)
	} else {
		t.Skipf("%s; skipping", msg)
	}
	return ""
}

// PrometheusOptions tunes StartPrometheus.
type PrometheusOptions struct {
	// Binary is the Prometheus server binary (default PrometheusBinary()).
	Binary string
	// Gatherer, when set, is served by an in-process exporter (an
	// httptest.Server) that Prometheus scrapes as job ExporterJob. A
	// *prometheus.Registry the test controls is the usual choice.
	Gatherer prometheus.Gatherer
	// Targets are more host:port targets, scraped as job "extra".
	Targets []string
	// ScrapeInterval is the scrape and evaluation interval (default 1s).
	ScrapeInterval time.Duration
	// ReadyTimeout bounds the wait for /-/ready (default 30s, and ctx).
	ReadyTimeout time.Duration
}

// PrometheusServer is a Prometheus server started by StartPrometheus.
type PrometheusServer struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:40123.
	URL string
	// ExporterURL is the base URL of the in-process exporter, if any; it
	// serves /metrics.
	ExporterURL string
	// Dir is the temporary folder holding the config, the TSDB and the log.
	Dir string

	cmd      *exec.Cmd
	exporter *httptest.Server
	logPath  string
	exited   chan struct{}
	stopOnce sync.Once
	stopErr  error
}

// StartPrometheus writes a config into a new temporary folder, starts the
// Prometheus server on a free port of 127.0.0.1 and waits until it is ready.
// ctx bounds the start only; call Stop (e.g. in t.Cleanup) to end the server.
func StartPrometheus(ctx context.Context, opts PrometheusOptions) (*PrometheusServer, error) {
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = PrometheusBinary(); err != nil {
			return nil, err
		}
	}
	if opts.ScrapeInterval <= 0 {
		opts.ScrapeInterval = time.Second
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	dir, err := os.MkdirTemp("", "rapport-prometheus-")
	if err != nil {
		return nil, err
	}
	s := &PrometheusServer{Dir: dir, logPath: filepath.Join(dir, "prometheus.log")}
	if opts.Gatherer != nil {
		s.exporter = httptest.NewServer(promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{}))
		s.ExporterURL = s.exporter.URL
	}
	if err := s.writeConfig(opts); err != nil {
		_ = s.Stop()
		return nil, err
	}
	// The free port may be taken between choosing and binding it: retry.
	for attempt := 1; ; attempt++ {
		err = s.start(ctx, bin, opts)
		if err == nil {
			return s, nil
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			_ = s.Stop()
			return nil, err
		}
	}
}

// writeConfig writes prometheus.yml into s.Dir.
func (s *PrometheusServer) writeConfig(opts PrometheusOptions) error {
	interval := model.Duration(opts.ScrapeInterval).String()
	var jobs []map[string]any
	if s.exporter != nil {
		u, err := url.Parse(s.exporter.URL)
		if err != nil {
			return err
		}
		jobs = append(jobs, map[string]any{
			"job_name":       ExporterJob,
			"static_configs": []map[string]any{{"targets": []string{u.Host}}},
		})
	}
	if len(opts.Targets) > 0 {
		jobs = append(jobs, map[string]any{
			"job_name":       "extra",
			"static_configs": []map[string]any{{"targets": opts.Targets}},
		})
	}
	cfg := map[string]any{
		"global": map[string]any{
			"scrape_interval":     interval,
			"scrape_timeout":      interval,
			"evaluation_interval": interval,
		},
		"scrape_configs": jobs,
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.Dir, "prometheus.yml"), b, 0o600)
}

// start runs the server once on a free port and waits for /-/ready.
func (s *PrometheusServer) start(ctx context.Context, bin string, opts PrometheusOptions) error {
	addr, err := FreeAddr()
	if err != nil {
		return err
	}
	logFile, err := os.Create(s.logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin,
		"--config.file="+filepath.Join(s.Dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(s.Dir, "data"),
		"--web.listen-address="+addr,
	)
	cmd.Dir = s.Dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
		close(exited)
	}()
	s.cmd, s.exited, s.URL = cmd, exited, "http://"+addr

	ctx, cancel := context.WithTimeout(ctx, opts.ReadyTimeout)
	defer cancel()
	ready := s.URL + "/-/ready"
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if probe(ctx, ready) {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("prometheus exited before it was ready (%s): %s", cmd.ProcessState, s.Logs())
		case <-ctx.Done():
			s.kill()
			return fmt.Errorf("prometheus was not ready at %s: %w: %s", ready, ctx.Err(), s.Logs())
		case <-tick.C:
		}
	}
}

// probe tells whether GET url answers 200.
func probe(ctx context.Context, target string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// kill ends the server process, if any, and waits for it.
func (s *PrometheusServer) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Logs returns the server's output so far (for failure messages).
func (s *PrometheusServer) Logs() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	const limit = 4000
	if len(b) > limit {
		b = append([]byte("..."), b[len(b)-limit:]...)
	}
	return string(b)
}

// Query runs an instant query against the server, for tests waiting until
// a scrape has landed.
func (s *PrometheusServer) Query(ctx context.Context, promql string) (model.Value, error) {
	c, err := api.NewClient(api.Config{Address: s.URL})
	if err != nil {
		return nil, err
	}
	v, _, _, err := promv1.NewAPI(c).Query(ctx, promql, time.Now())
	return v, err
}

// Stop kills the server, waits for it to exit, stops the exporter and
// removes the temporary folder. It may be called more than once.
func (s *PrometheusServer) Stop() error {
	s.stopOnce.Do(func() {
		s.kill()
		if s.exporter != nil {
			s.exporter.Close()
		}
		s.stopErr = os.RemoveAll(s.Dir)
	})
	return s.stopErr
}
