//go:build bench

package cluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/valyala/fasthttp"

	"github.com/rapport-dev/rapport/internal/fastserve"
	"github.com/rapport-dev/rapport/test/utils"
)

// ceilingResult is one run of TestHTTPCeiling.
type ceilingResult struct {
	Handler                string
	InFlight               int
	DurationS              float64
	RequestsPerSecond      float64
	AckP50Ms, AckP99Ms     float64
	ServerCPUCoresUsed     float64
	LoadGeneratorCoresUsed float64
	RequestsPerServerCoreS float64
}

// ceilingServeEnv makes the test binary serve the ceiling's handlers (a
// child process, so that its CPU is measured apart from the load
// generator's, as the manager's is).
const ceilingServeEnv = "RAPPORT_BENCH_CEILING_SERVE"

// TestHTTPCeiling measures what this machine allows before any of the
// collector's work:
//
//	BENCH_OUT=docs/benchmarks go test -tags bench ./test/bench/cluster/ -run TestHTTPCeiling -v
//
// An HTTP server in its own process, answering each request with a 202
// and a small JSON body, driven by the same load generator (drive),
// request shape (a browser answer's URL, headers and body) and 1,024
// requests in flight as TestFeedbackThroughput, 10 s per handler:
//
//   - "immediate" answers at once;
//   - "held" answers at the next tick of a 50 ms timer, as a group commit
//     holds each answer until the write that carries it (a collector whose
//     handler and commit cost nothing);
//   - "held-fastserve", the same handler served as the collector serves
//     its handlers: fasthttp's server through internal/fastserve;
//   - "held-fasthttp", the same written as a fasthttp handler (what the
//     net/http handler costs on fasthttp's server).
//
// BENCH_CEILING_HANDLERS (comma-separated) runs some of them.
func TestHTTPCeiling(t *testing.T) {
	var results []ceilingResult
	handlers := []string{"immediate", "held", "held-fastserve", "held-fasthttp"}
	if h := os.Getenv("BENCH_CEILING_HANDLERS"); h != "" {
		handlers = strings.Split(h, ",")
	}
	for _, handler := range handlers {
		r := ceilingRun(t, handler)
		t.Logf("%s: %.0f requests/s, p50 %.1f ms, p99 %.1f ms, server %.2f cores, load generator %.2f cores",
			handler, r.RequestsPerSecond, r.AckP50Ms, r.AckP99Ms, r.ServerCPUCoresUsed, r.LoadGeneratorCoresUsed)
		results = append(results, r)
	}
	report(t, "http-ceiling", results)
}

func ceilingRun(t *testing.T, handler string) ceilingResult {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), ceilingServeEnv+"="+handler)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	must(t, err)
	base := "http://" + strings.TrimSpace(line)
	target := base + "/v1/public/namespaces/bench/experiments/answers/responses"

	const duration = 10 * time.Second
	inFlight := envInt("BENCH_IN_FLIGHT", 1024)
	self0, _ := utils.ProcessUsage(os.Getpid())
	srv0, _ := utils.ProcessUsage(cmd.Process.Pid)
	tmpl, err := newRequestTemplate(target, http.Header{"Origin": {benchOrigin}, "Content-Type": {"application/json"}})
	must(t, err)
	prefix := answerPrefix(strings.Repeat("a", 160), 1)
	load := drive([]string{base}, inFlight, duration, func(seq int64, buf []byte) []byte {
		return tmpl.append(buf, "", "", appendAnswer(nil, prefix, seq))
	})
	self1, _ := utils.ProcessUsage(os.Getpid())
	srv1, _ := utils.ProcessUsage(cmd.Process.Pid)
	if load.rejected > 0 {
		t.Fatalf("%s: %d requests failed", handler, load.rejected)
	}
	lat := load.latencies
	server := (srv1.CPU - srv0.CPU).Seconds() / duration.Seconds()
	return ceilingResult{
		Handler: handler, InFlight: inFlight, DurationS: duration.Seconds(),
		RequestsPerSecond:      float64(len(lat)) / duration.Seconds(),
		AckP50Ms:               quantile(lat, 0.5),
		AckP99Ms:               quantile(lat, 0.99),
		ServerCPUCoresUsed:     server,
		LoadGeneratorCoresUsed: (self1.CPU - self0.CPU).Seconds() / duration.Seconds(),
		RequestsPerServerCoreS: float64(len(lat)) / duration.Seconds() / server,
	}
}

// serveCeiling is the child process of TestHTTPCeiling: it prints its
// address and serves until killed.
func serveCeiling(handler string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	// tick is closed and replaced every 50 ms: a held request waits for the
	// next close, as an answer waits for the write that carries it.
	var mu sync.Mutex
	tick := make(chan struct{})
	held := strings.HasPrefix(handler, "held")
	if held {
		go func() {
			for range time.Tick(50 * time.Millisecond) {
				mu.Lock()
				close(tick)
				tick = make(chan struct{})
				mu.Unlock()
			}
		}()
	}
	wait := func() {
		if !held {
			return
		}
		mu.Lock()
		c := tick
		mu.Unlock()
		<-c
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		wait()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"accepted":1}`+"\n")
	})
	switch handler {
	case "immediate", "held":
		err = http.Serve(ln, h)
	case "held-fastserve":
		err = (&fasthttp.Server{NoDefaultServerHeader: true, NoDefaultContentType: true,
			Handler: fastserve.Handler(context.Background(), h, logr.Discard(), nil, nil)}).Serve(ln)
	case "held-fasthttp":
		err = (&fasthttp.Server{NoDefaultServerHeader: true, NoDefaultContentType: true,
			Handler: func(ctx *fasthttp.RequestCtx) {
				_ = ctx.PostBody()
				wait()
				ctx.SetContentType("application/json")
				ctx.SetStatusCode(http.StatusAccepted)
				ctx.SetBodyString(`{"accepted":1}` + "\n")
			}}).Serve(ln)
	default:
		err = fmt.Errorf("unknown handler %q", handler)
	}
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
