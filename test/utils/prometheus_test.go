package utils

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
)

func TestStartPrometheus(t *testing.T) {
	bin := PrometheusBinaryOrSkip(t)
	g := NewWithT(t)
	reg := prometheus.NewRegistry()
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "utils_test_value", Help: "A value the test sets."})
	reg.MustRegister(gauge)
	gauge.Set(42)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := StartPrometheus(ctx, PrometheusOptions{Binary: bin, Gatherer: reg})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = srv.Stop() })
	g.Expect(srv.URL).To(HavePrefix("http://127.0.0.1:"))
	g.Expect(filepath.Join(srv.Dir, "prometheus.yml")).To(BeAnExistingFile())

	// The exporter is scraped every second.
	value := func() (float64, error) {
		v, err := srv.Query(ctx, `utils_test_value{job="`+ExporterJob+`"}`)
		if err != nil {
			return 0, err
		}
		vec, ok := v.(model.Vector)
		if !ok || len(vec) != 1 {
			return 0, fmt.Errorf("got %v", v)
		}
		return float64(vec[0].Value), nil
	}
	g.Eventually(value).WithTimeout(10 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal(42.0))
	gauge.Set(7)
	g.Eventually(value).WithTimeout(10 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal(7.0))

	proc := srv.cmd.Process
	g.Expect(srv.Stop()).To(Succeed())
	g.Expect(srv.Stop()).To(Succeed(), "a second Stop is harmless")
	_, err = os.Stat(srv.Dir)
	g.Expect(os.IsNotExist(err)).To(BeTrue(), "the temporary folder is removed")
	g.Expect(proc.Signal(syscall.Signal(0))).To(MatchError(os.ErrProcessDone), "the process has exited")
	_, err = srv.Query(ctx, "up")
	g.Expect(err).To(HaveOccurred())
}

func TestStartPrometheusBadBinary(t *testing.T) {
	_, err := StartPrometheus(context.Background(), PrometheusOptions{Binary: "/bin/false"})
	if err == nil || !strings.Contains(err.Error(), "prometheus exited before it was ready") {
		t.Fatalf("err = %v, want an early-exit error", err)
	}
}

func TestFindPrometheusBinaryEnv(t *testing.T) {
	t.Setenv(PrometheusBinEnv, "/nonexistent/prometheus")
	if _, err := findPrometheusBinary(); err == nil || !strings.Contains(err.Error(), "PROMETHEUS_BIN=/nonexistent/prometheus") {
		t.Errorf("err = %v, want one naming PROMETHEUS_BIN", err)
	}
	t.Setenv(PrometheusBinEnv, t.TempDir())
	if _, err := findPrometheusBinary(); err == nil || !strings.Contains(err.Error(), "not an executable file") {
		t.Errorf("err = %v, want 'not an executable file'", err)
	}
	t.Setenv(PrometheusBinEnv, "/bin/true")
	if bin, err := findPrometheusBinary(); err != nil || bin != "/bin/true" {
		t.Errorf("findPrometheusBinary = %q, %v; want /bin/true", bin, err)
	}
}

// recorder records what binaryOrSkip does.
type recorder struct{ skipped, failed string }

func (r *recorder) Helper()                           {}
func (r *recorder) Skipf(format string, args ...any)  { r.skipped = fmt.Sprintf(format, args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestPrometheusBinaryOrSkip(t *testing.T) {
	missing := func() (string, error) { return "", errors.New("nothing found") }
	t.Setenv("CI", "true")
	r := &recorder{}
	binaryOrSkip(r, missing)
	if !strings.Contains(r.failed, "nothing found") || !strings.Contains(r.failed, "CI=true") || r.skipped != "" {
		t.Errorf("with CI=true: failed %q, skipped %q; want a failure", r.failed, r.skipped)
	}
	t.Setenv("CI", "")
	r = &recorder{}
	binaryOrSkip(r, missing)
	if !strings.Contains(r.skipped, "nothing found") || r.failed != "" {
		t.Errorf("without CI: failed %q, skipped %q; want a skip", r.failed, r.skipped)
	}
	r = &recorder{}
	if bin := binaryOrSkip(r, func() (string, error) { return "/x/prometheus", nil }); bin != "/x/prometheus" || r.failed != "" || r.skipped != "" {
		t.Errorf("found: %q, failed %q, skipped %q", bin, r.failed, r.skipped)
	}
}
