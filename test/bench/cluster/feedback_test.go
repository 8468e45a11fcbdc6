//go:build bench

package cluster

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/assignment"
	"github.com/rapport-dev/rapport/internal/feedback"
	"github.com/rapport-dev/rapport/test/utils"
)

// feedbackResult is one run of TestFeedbackThroughput.
type feedbackResult struct {
	Endpoint             string
	Run, InFlight        int
	DurationS            float64
	AcceptedPerSecond    float64
	AckP50Ms, AckP99Ms   float64
	Rejected             int64
	RejectedBy           map[string]int64 `json:",omitempty"`
	TallyMatchesAccepted bool
	CommitsPerSecond     float64
	// Replicas is the number of manager replicas the load was spread over;
	// the figures below are their sums (RSS: the largest).
	Replicas int
	// APIRequestsPerSecond counts the manager's requests to the API server
	// by method (controller and collector together).
	APIRequestsPerSecond map[string]float64
	// ConflictsPerSecond counts the tally writes that lost to another
	// replica's and were retried (rapport_collector_commit_conflicts_total).
	ConflictsPerSecond                 float64
	ManagerCPUCoresUsed, ManagerRSSMiB float64
	// Where the rest of the machine's two cores went during the run: the
	// load generator (this test process), the API server, etcd, and all
	// processes together (/proc/stat).
	LoadGeneratorCoresUsed, APIServerCoresUsed, EtcdCoresUsed, MachineCoresBusy float64
	// HostVerifyMicros is how long one feedback.Verify of the Typeform
	// fixture took just before the run, alone on an idle manager: the
	// host's speed at that moment (about 1.2 µs on a quiet machine). Runs
	// on this shared virtual machine vary with it, so compare rates of runs
	// with similar values.
	HostVerifyMicros float64
	// HostRoundTripMicros is what the host's system calls cost just before
	// and just after the run: one loopback round trip
	// (hostRoundTripMicros; 18.5–26 µs on 2026-12-01, 10:26–10:32).
	HostRoundTripMicros [2]float64
	// WebhookSignedDuringRun counts the webhook events the load generator
	// signed while the run was measured: those past the ones it signed
	// before (presignRate per second of the run), or all of them with
	// BENCH_SIGN=during; left out when 0. Recordings before 2026-12-01,
	// 21:00 (those without WarmUpS) signed every event during the run.
	WebhookSignedDuringRun int64 `json:",omitempty"`
	// WarmUpS is how many seconds of load came before the run, not
	// measured (BENCH_WARMUP_S; recordings without the field had none).
	WarmUpS int
}

// apiRequests sums rest_client_requests_total by method.
func apiRequests(fams map[string]*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, m := range fams["rest_client_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "method" {
				out[l.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// sample is what the replicas' metrics and /proc say at one moment.
type sample struct {
	commits, conflicts float64
	api                map[string]float64
	cpu                time.Duration
	rss                int64
	// CPU time of the load generator (this process), the API server and
	// etcd; busy is the machine's busy time, all cores together.
	load, apiserver, etcd, busy time.Duration
}

// machineBusy is the time all cores spent on anything but idling or
// waiting for I/O since boot, from /proc/stat.
func machineBusy(t *testing.T) time.Duration {
	b, err := os.ReadFile("/proc/stat")
	must(t, err)
	d, err := busyTime(string(b))
	must(t, err)
	return d
}

// busyTime reads /proc/stat's first line ("cpu user nice system idle
// iowait irq softirq steal ..." in USER_HZ ticks) and sums all but idle
// and iowait.
func busyTime(stat string) (time.Duration, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("unexpected /proc/stat line %q", line)
	}
	var ticks int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat field %d: %w", i+1, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / 100, nil
}

// hostVerifyMicros times feedback.Verify of a signed Typeform fixture,
// single-threaded, for 200 ms: µs per call.
func hostVerifyMicros(t *testing.T, data map[string][]byte, body []byte) float64 {
	h, v := feedback.Sign(cxv1.ProviderTypeform, nil, data, body)
	header := http.Header{h: {v}}
	n, start := 0, time.Now()
	for time.Since(start) < 200*time.Millisecond {
		for range 100 {
			if err := feedback.Verify(cxv1.ProviderTypeform, nil, data, header, body); err != nil {
				t.Fatal(err)
			}
		}
		n += 100
	}
	return math.Round(float64(time.Since(start).Nanoseconds())/float64(n)) / 1000
}

func sampleReplicas(t *testing.T, e *env) sample {
	s := sample{api: map[string]float64{}, busy: machineBusy(t), load: cpuOf(t, os.Getpid()),
		apiserver: cpuOf(t, e.apiserverPid), etcd: cpuOf(t, e.etcdPid)}
	for _, m := range e.mgrs {
		fams, err := m.Metrics()
		must(t, err)
		s.commits += float64(fams["rapport_collector_commit_duration_seconds"].GetMetric()[0].GetHistogram().GetSampleCount())
		s.conflicts += fams["rapport_collector_commit_conflicts_total"].GetMetric()[0].GetCounter().GetValue()
		for k, v := range apiRequests(fams) {
			s.api[k] += v
		}
		u, _ := utils.ProcessUsage(m.Cmd.Process.Pid)
		s.cpu += u.CPU
		s.rss = max(s.rss, u.RSS)
	}
	return s
}

const benchOrigin = "https://shop.example.com"

// TestFeedbackThroughput posts single answers, as fast as the collector
// acknowledges them (each 202 is a durable commit), to the two endpoints
// that take answers one at a time: a FeedbackSource's webhook (Typeform
// events, each with its own event id, signed) and the public browser
// endpoint (each answer from its own respondent, with a signed
// assignment). 1,024 requests in flight (BENCH_IN_FLIGHT) from the same
// 2-core machine, for 20 s each, BENCH_RUNS times (default 3). It reports answers per second,
// acknowledgement latency (p50, p99), commits, the manager's CPU and
// memory, where the rest of the two cores went (load generator, API server,
// etcd), how fast the host computed and how much a loopback round trip
// cost it just before and after, and checks that the tally holds exactly
// the acknowledged answers.
// The browser endpoint is measured without CORS preflights: a browser
// caches its preflight for 10 minutes (Access-Control-Max-Age), so a
// customer's first answer costs one more request.
//
// BENCH_REPLICAS=2 runs two manager replicas (leader election on, as
// installs run them) and spreads the connections over both, as a Service
// would: both commit answers of the one experiment into its tally, and the
// results count the writes that lost a conflict to the other replica's.
// Their file is feedback-throughput-2-replicas.json.
//
// BENCH_ENDPOINTS=public,webhook measures those endpoints, in that order
// (default webhook,public).
//
// Each measured run follows BENCH_WARMUP_S seconds (default 3; 0: none)
// of the same load, not measured: the first run after the manager starts
// is slower than the next (most likely its heap, goroutine stacks and
// pools growing and its pages touched for the first time), and without a
// warm-up the default order measures the webhook first. Recordings before
// 2026-12-01, 21:00 ran without one.
//
// BENCH_PPROF=127.0.0.1:6060 serves the manager's profiling endpoints during
// the runs (go tool pprof http://127.0.0.1:6060/debug/pprof/profile?seconds=15).
func TestFeedbackThroughput(t *testing.T) {
	opts := feedbackOptions{warmUp: 3, signDuring: os.Getenv("BENCH_SIGN") == "during"}
	if v := os.Getenv("BENCH_WARMUP_S"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Fatalf("BENCH_WARMUP_S=%s: give whole seconds, 0 for none", v)
		}
		opts.warmUp = n
	}
	args := []string{"--collector-public-rate-limit=-1"}
	replicas := envInt("BENCH_REPLICAS", 1)
	if addr := os.Getenv("BENCH_PPROF"); addr != "" {
		if replicas > 1 {
			t.Fatal("BENCH_PPROF profiles one manager: unset BENCH_REPLICAS or set it to 1")
		}
		args = append(args, "--pprof-bind-address="+addr)
	}
	e := newEnvReplicas(t, replicas, args...)
	runs := envInt("BENCH_RUNS", 3)
	var results []feedbackResult
	endpoints := []string{"webhook", "public"}
	if list := os.Getenv("BENCH_ENDPOINTS"); list != "" {
		endpoints = strings.Split(list, ",")
		for _, ep := range endpoints {
			if ep != "webhook" && ep != "public" {
				t.Fatalf("BENCH_ENDPOINTS=%s: each endpoint is webhook or public", list)
			}
		}
	}
	for _, endpoint := range endpoints {
		var accepted, p99 []float64
		for run := range runs {
			r := feedbackRun(t, e, opts, endpoint, run+1)
			results = append(results, r)
			accepted = append(accepted, r.AcceptedPerSecond)
			p99 = append(p99, r.AckP99Ms)
			t.Logf("%s, run %d: %.0f answers/s, ack p50 %.1f ms, p99 %.1f ms, %d rejected %v, %.1f conflicts/s, tally exact: %v; a loopback round trip %.1f µs before, %.1f after",
				endpoint, r.Run, r.AcceptedPerSecond, r.AckP50Ms, r.AckP99Ms, r.Rejected, r.RejectedBy, r.ConflictsPerSecond, r.TallyMatchesAccepted,
				r.HostRoundTripMicros[0], r.HostRoundTripMicros[1])
		}
		t.Logf("%s, median of %d runs: %.0f answers/s (min %.0f, max %.0f), ack p99 %.1f ms",
			endpoint, runs, quantile(accepted, 0.5), quantile(accepted, 0), quantile(accepted, 1), quantile(p99, 0.5))
	}
	name := "feedback-throughput"
	if len(e.mgrs) > 1 {
		name = fmt.Sprintf("%s-%d-replicas", name, len(e.mgrs))
	}
	report(t, name, results)
}

// feedbackOptions are TestFeedbackThroughput's settings of every run:
// seconds of warm-up (BENCH_WARMUP_S), and whether the webhook's events
// are signed as they are sent rather than before the run (BENCH_SIGN).
type feedbackOptions struct {
	warmUp     int
	signDuring bool
}

func feedbackRun(t *testing.T, e *env, opts feedbackOptions, endpoint string, run int) feedbackResult {
	ctx := context.Background()
	ns, _ := e.shop(ctx, t)
	name := "answers"
	e.route(ctx, t, ns, name)
	exp := experiment(ns, name, name, []cxv1.Step{{Weight: 50, MinDuration: metav1.Duration{Duration: time.Hour}}}, "3")
	exp.Spec.Traffic.GatewayAPI.AssignmentCookie = &cxv1.AssignmentCookie{}
	exp.Spec.Satisfaction.Source.Collector.Browser = &cxv1.BrowserFeedback{AllowedOrigins: []string{benchOrigin}}
	must(t, e.c.Create(ctx, exp))
	must(t, wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		err := e.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, exp)
		return err == nil && exp.Status.Phase == cxv1.PhaseProgressing, nil
	}))
	// The controller created the experiment's key: sign as the gateway's cookie would.
	var key []byte
	must(t, wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		k, err := (&assignment.Keys{Reader: e.c}).Get(ctx, exp)
		key = k
		return err == nil, nil
	}))
	value := assignment.Sign(key, assignment.Assignment{Namespace: ns, Experiment: name, Run: exp.Status.Run, Segment: "enterprise", Variant: "control"})

	raw, err := os.ReadFile(filepath.Join(utils.RepoRoot(), "internal", "feedback", "testdata", "typeform-form_response.json"))
	must(t, err)
	typeformEvent := strings.ReplaceAll(string(raw), "{{ASSIGNMENT}}", value)
	data := map[string][]byte{feedback.KeyTypeformSecret: []byte("bench-secret")}

	const duration = 20 * time.Second
	var next requestFunc
	var sigs *signatures // the webhook's
	switch endpoint {
	case "webhook":
		must(t, e.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "typeform", Namespace: ns}, Data: data}))
		must(t, e.c.Create(ctx, &cxv1.FeedbackSource{ObjectMeta: metav1.ObjectMeta{Name: "typeform", Namespace: ns},
			Spec: cxv1.FeedbackSourceSpec{Provider: cxv1.ProviderTypeform, SecretRef: cxv1.LocalObjectRef{Name: "typeform"}}}))
		// Each event's id is bench-<run>-<seq>, written between the
		// fixture's text before and after its own id.
		before, after, ok := strings.Cut(typeformEvent, "01JDRAPPORT0TYPEFORM00001")
		if !ok {
			t.Fatal("the Typeform fixture has no event id 01JDRAPPORT0TYPEFORM00001")
		}
		tmpl, err := newRequestTemplate(fmt.Sprintf("%s/v1/namespaces/%s/sources/typeform/webhook", e.mgr.CollectorURL, ns),
			http.Header{"Content-Type": {"application/json"}})
		must(t, err)
		id := fmt.Sprintf("bench-%d-", run)
		appendEvent := func(b []byte, seq int64) []byte {
			b = append(b, before...)
			b = append(b, id...)
			b = strconv.AppendInt(b, seq, 10)
			return append(b, after...)
		}
		event := func(seq int64) []byte { return appendEvent(make([]byte, 0, len(before)+len(after)+32), seq) }
		header, _ := feedback.Sign(cxv1.ProviderTypeform, nil, data, nil)
		sign := func(seq int64) string {
			_, v := feedback.Sign(cxv1.ProviderTypeform, nil, data, event(seq))
			return v
		}
		// The provider signs its events on its own servers: sign the
		// run's before it (BENCH_SIGN=during signs each as it is sent).
		n := presignRate * int(duration/time.Second)
		if opts.signDuring {
			n = 0
		}
		start := time.Now()
		sigs, err = presign(n, sign)
		must(t, err)
		t.Logf("webhook, run %d: %d events signed before the run in %v", run, n, time.Since(start).Round(time.Millisecond))
		next = func(seq int64, buf []byte) []byte {
			// The event is written in place: its length is known.
			length := len(before) + len(id) + len(after) + decimalLen(seq)
			return appendEvent(tmpl.appendHead(buf, header, sigs.value(seq), length), seq)
		}
	default:
		tmpl, err := newRequestTemplate(fmt.Sprintf("%s/v1/public/namespaces/%s/experiments/%s/responses", e.mgr.CollectorURL, ns, name),
			http.Header{"Origin": {benchOrigin}, "Content-Type": {"application/json"}})
		must(t, err)
		prefix := answerPrefix(value, run)
		next = func(seq int64, buf []byte) []byte {
			// The respondent is r<run>-<seq in 15 digits> (the probe's, seq -1, is r<run>--000000000000001).
			return tmpl.append(buf, "", "", appendAnswer(nil, prefix, seq))
		}
	}
	// Wait until every replica's caches hold the source and the experiment
	// (the same answer each time: the tally counts it once).
	for _, m := range e.mgrs {
		must(t, wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
			conn, err := dialLoad(m.CollectorURL)
			if err != nil {
				return false, nil
			}
			defer conn.close()
			status, err := conn.do(next(-1, nil))
			return err == nil && status == http.StatusAccepted, nil
		}))
	}

	inFlight := envInt("BENCH_IN_FLIGHT", 1024)
	var bases []string
	for _, m := range e.mgrs {
		bases = append(bases, m.CollectorURL)
	}
	// BENCH_WARMUP_S: that many seconds of the same load first, not
	// measured (their answers are counted in the tally; their requests are
	// numbered -2, -3, ... so that none repeats a measured one).
	var warm loadResult
	if opts.warmUp > 0 {
		warm = drive(bases, inFlight, time.Duration(opts.warmUp)*time.Second, func(seq int64, buf []byte) []byte { return next(-1-seq, buf) })
		t.Logf("%s, run %d: warm-up of %d s: %d answers, ack p50 %.1f ms, p99 %.1f ms, rejected %v",
			endpoint, run, opts.warmUp, warm.accepted, quantile(warm.latencies, 0.5), quantile(warm.latencies, 0.99), warm.rejectedBy)
	}

	roundTrip, err := hostRoundTripMicros()
	must(t, err)
	speed := hostVerifyMicros(t, data, []byte(typeformEvent))
	s0 := sampleReplicas(t, e)
	load := drive(bases, inFlight, duration, next)
	var signedDuring int64
	if sigs != nil { // only measured events (seq ≥ 0) count as late
		signedDuring = sigs.late.Load()
	}
	for k, n := range warm.rejectedBy { // never hidden
		load.rejectedBy["warm-up: "+k] += n
		load.rejected += n
	}
	s1 := sampleReplicas(t, e)
	roundTripAfter, err := hostRoundTripMicros()
	must(t, err)
	lat := load.latencies
	cores := func(d time.Duration) float64 { return math.Round(d.Seconds()/duration.Seconds()*1000) / 1000 }
	apiRate := map[string]float64{}
	for method, n := range s1.api {
		apiRate[method] = math.Round((n-s0.api[method])/duration.Seconds()*10) / 10
	}
	tally := &cxv1.ResponseTally{}
	must(t, e.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, tally))
	if tally.Spec.Total != load.accepted+warm.accepted+1 { // +1: the readiness probe's answer
		t.Errorf("%s: the tally holds %d answers, %d were acknowledged", endpoint, tally.Spec.Total, load.accepted+warm.accepted+1)
	}
	return feedbackResult{
		Endpoint: endpoint, Run: run, InFlight: inFlight, DurationS: duration.Seconds(),
		AcceptedPerSecond:      float64(load.accepted) / duration.Seconds(),
		AckP50Ms:               quantile(lat, 0.5),
		AckP99Ms:               quantile(lat, 0.99),
		Rejected:               load.rejected,
		RejectedBy:             load.rejectedBy,
		TallyMatchesAccepted:   tally.Spec.Total == load.accepted+warm.accepted+1,
		CommitsPerSecond:       (s1.commits - s0.commits) / duration.Seconds(),
		Replicas:               len(e.mgrs),
		APIRequestsPerSecond:   apiRate,
		ConflictsPerSecond:     (s1.conflicts - s0.conflicts) / duration.Seconds(),
		ManagerCPUCoresUsed:    (s1.cpu - s0.cpu).Seconds() / duration.Seconds(),
		ManagerRSSMiB:          float64(s1.rss) / (1 << 20),
		LoadGeneratorCoresUsed: cores(s1.load - s0.load),
		APIServerCoresUsed:     cores(s1.apiserver - s0.apiserver),
		EtcdCoresUsed:          cores(s1.etcd - s0.etcd),
		MachineCoresBusy:       cores(s1.busy - s0.busy),
		HostVerifyMicros:       speed,
		HostRoundTripMicros:    [2]float64{roundTrip, roundTripAfter},
		WebhookSignedDuringRun: signedDuring,
		WarmUpS:                opts.warmUp,
	}
}
