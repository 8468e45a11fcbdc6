package reliability

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/sim"
	"github.com/rapport-dev/rapport/test/utils"
)

func ptr[T any](v T) *T      { return &v }
func pct(x float64) *float64 { return &x }

// shop creates a namespace with the checkout Services, route, two segments
// and a feedback token, and returns its name and token.
func shop() (string, string) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "shop-"}}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	for _, name := range []string{"checkout-v1", "checkout-v2"} {
		Expect(k8s.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns.Name},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(8080)}}}})).To(Succeed())
	}
	Expect(k8s.Create(ctx, &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: ns.Name},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw"}}},
			Rules: []gwv1.HTTPRouteRule{{
				Matches:     []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr(gwv1.PathMatchPathPrefix), Value: ptr("/checkout")}}},
				BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "checkout-v1", Port: ptr(gwv1.PortNumber(8080))}}}},
			}},
		},
	})).To(Succeed())
	for name, header := range map[string]string{"enterprise": "enterprise", "new-customers": "new"} {
		Expect(k8s.Create(ctx, &cxv1.CustomerSegment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns.Name},
			Spec: cxv1.CustomerSegmentSpec{Match: cxv1.SegmentMatch{Headers: []cxv1.HeaderMatch{{Name: "x-tier", Value: header}}}}})).To(Succeed())
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	Expect(k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "feedback-token", Namespace: ns.Name, Labels: map[string]string{cxv1.LabelFeedbackToken: "true"}},
		Data:       map[string][]byte{"token": []byte(token)},
	})).To(Succeed())
	return ns.Name, token
}

// experiment is a three-step experiment on both segments.
func experiment(ns string, minDuration time.Duration) *cxv1.CXExperiment {
	steps := []cxv1.Step{}
	for _, w := range []int32{10, 30, 50} {
		steps = append(steps, cxv1.Step{Weight: w, MinDuration: metav1.Duration{Duration: minDuration}})
	}
	return &cxv1.CXExperiment{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-redesign", Namespace: ns},
		Spec: cxv1.CXExperimentSpec{
			Variants: []cxv1.Variant{
				{Name: "control", Control: true, Service: &cxv1.ServiceRef{Name: "checkout-v1", Port: 8080}},
				{Name: "one-page", Service: &cxv1.ServiceRef{Name: "checkout-v2", Port: 8080}},
			},
			Segments:       []string{"enterprise", "new-customers"},
			Traffic:        cxv1.Traffic{GatewayAPI: &cxv1.GatewayAPITraffic{HTTPRoute: "checkout"}},
			Steps:          steps,
			Promotion:      cxv1.PromotionAutomatic,
			OnInconclusive: cxv1.InconclusiveRollback,
			Satisfaction: cxv1.Satisfaction{Metric: cxv1.MetricCSAT, MaxDrop: "3", Confidence: "95", MinResponses: 100,
				Source: cxv1.SatisfactionSource{Collector: &cxv1.CollectorSource{}}, Interval: metav1.Duration{Duration: time.Second}},
		},
	}
}

// scenario: enterprise customers turn against the one-page checkout after
// their 300th answer (86 -> 70); new customers like both the same.
func scenario(seed uint64) *sim.Scenario {
	return &sim.Scenario{Rate: 1, Batch: 20, Seed: seed, Segments: map[string]sim.SegmentScenario{
		"enterprise": {Share: 1, Variants: map[string]sim.Distribution{
			"control":  {Satisfied: pct(86)},
			"one-page": {Satisfied: pct(86), After: 300, Then: &sim.Distribution{Satisfied: pct(70)}},
		}},
		"new-customers": {Share: 1, Variants: map[string]sim.Distribution{
			"control":  {Satisfied: pct(85)},
			"one-page": {Satisfied: pct(86)},
		}},
	}}
}

func getExp(ns string) *cxv1.CXExperiment {
	exp := &cxv1.CXExperiment{}
	Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "checkout-redesign"}, exp)).To(Succeed())
	return exp
}

// feeder posts simulated answers like a careful app: every batch has an
// Idempotency-Key and is retried (on any collector) until acknowledged, so
// the number of acknowledged responses is exact.
type feeder struct {
	ns, token string
	urls      func() []string
	drawer    *sim.Drawer
	http      *http.Client

	acked    atomic.Int64 // responses acknowledged with 202 (each batch once)
	attempts atomic.Int64 // requests sent, retries included
	retries  atomic.Int64
	next     atomic.Uint64
	refused  atomic.Int32           // the status code that ended the run (409 or 404), 0 while running
	lastErr  atomic.Pointer[string] // the last failed attempt, with its time
	lastAck  atomic.Int64           // when the last batch was acknowledged (Unix nanoseconds)
}

// String is the feeder's progress for failure messages.
func (f *feeder) String() string {
	last := "none"
	if p := f.lastErr.Load(); p != nil {
		last = *p
	}
	ack := "never"
	if t := f.lastAck.Load(); t != 0 {
		ack = ago(time.Unix(0, t))
	}
	return fmt.Sprintf("feeder: acknowledged %d (last %s), %d requests, %d retries, stopped on %d; last failure: %s",
		f.acked.Load(), ack, f.attempts.Load(), f.retries.Load(), f.refused.Load(), last)
}

func (f *feeder) failed(what string) {
	msg := time.Now().UTC().Format("15:04:05.000") + " " + what
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	f.lastErr.Store(&msg)
}

func newFeeder(ns, token string, seed uint64, urls func() []string) *feeder {
	exp := getExp(ns)
	scale, control, err := sim.ScaleOf(exp)
	Expect(err).NotTo(HaveOccurred())
	return &feeder{ns: ns, token: token, urls: urls, drawer: sim.NewDrawer(scenario(seed), scale, control),
		http: &http.Client{Timeout: 10 * time.Second}}
}

// send posts one batch until it is acknowledged; it returns false once the
// experiment no longer takes feedback or ctx ends.
func (f *feeder) send(ctx context.Context, batch []sim.Answer) bool {
	body := sim.Body(batch, "")
	key := fmt.Sprintf("batch-%d", f.next.Add(1))
	for attempt := 0; ctx.Err() == nil; attempt++ {
		urls := f.urls()
		if len(urls) == 0 {
			time.Sleep(50 * time.Millisecond) // no collector up: client-side retry backoff
			continue
		}
		url := urls[attempt%len(urls)]
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost,
			fmt.Sprintf("%s/v1/namespaces/%s/experiments/checkout-redesign/responses", url, f.ns), bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+f.token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		f.attempts.Add(1)
		resp, err := f.http.Do(req)
		if err != nil {
			f.failed(err.Error())
		} else {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusAccepted:
				f.acked.Add(int64(len(batch)))
				f.lastAck.Store(time.Now().UnixNano())
				return true
			case http.StatusConflict, http.StatusNotFound:
				f.failed(fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(msg)))
				f.refused.Store(int32(resp.StatusCode))
				return false
			}
			f.failed(fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(msg)))
		}
		f.retries.Add(1)
		time.Sleep(time.Duration(20*(attempt%10+1)) * time.Millisecond) // client-side retry backoff
	}
	return false
}

// run feeds batches drawn with the live weights until the experiment stops
// taking feedback or ctx ends. Tests let it end on the collectors' refusal
// (see finish) rather than by cancelling ctx: a request abandoned by its
// client is still committed (the commit does not follow the request's
// context; a real client retries with the same key), so cancelling could
// leave the tally one batch ahead of what was acknowledged.
//
// Each answer carries `at`, when the weights it was drawn with were read
// from the route: the time its customer was served, as a careful client
// sends it. Without it the collector places an answer by its commit time,
// and the answers drawn with the old weights in the moment before the feeder
// sees a change would count in the new epoch.
func (f *feeder) run(ctx context.Context, weights func() (map[string]map[string]int32, time.Time)) {
	for ctx.Err() == nil {
		w, at := weights()
		batch := make([]sim.Answer, 20)
		for i := range batch {
			batch[i] = f.drawer.Draw(w)
			batch[i].At = at
		}
		if !f.send(ctx, batch) {
			return
		}
	}
}

// finish waits for the feeder to stop by itself, which it does when a
// collector refuses a batch because the experiment has ended, then stops the
// monitor. Every batch sent is then either acknowledged or refused, so the
// acknowledged count is exact.
func finish(f *feeder, fed <-chan struct{}, stop context.CancelFunc) {
	before := f.acked.Load()
	Eventually(fed, 30*time.Second).Should(BeClosed(), "the feeder stops once the collectors refuse answers for the ended experiment")
	stop()
	GinkgoWriter.Printf("%d responses acknowledged after the test saw the experiment end; feeder stopped on %d\n",
		f.acked.Load()-before, f.refused.Load())
	Expect(f.refused.Load()).To(BeElementOf(int32(http.StatusConflict), int32(http.StatusNotFound)),
		"the feeder ended on the collector's refusal")
}

// checkCounted checks that the tally holds exactly the acknowledged
// responses: none lost, none counted twice.
func (f *feeder) checkCounted() {
	Expect(tallyTotal(f.ns)).To(Equal(f.acked.Load()),
		"every acknowledged response is counted exactly once (%d requests, %d retries, feeder stopped on %d)",
		f.attempts.Load(), f.retries.Load(), f.refused.Load())
}

// monitor records every distinct split it sees, to check that weights never
// jump backwards or forwards wrongly, and offers the feeder the last split
// confirmed by two reads in a row with a moment it was served (see
// sim.Confirmer: a read's start is not that moment when the route changed
// during a slow read, and the answers drawn with it would make a false
// sample-ratio mismatch).
type monitor struct {
	mu      sync.Mutex
	history []map[string]map[string]int32
	slowest time.Duration // the longest read of the experiment and its route
	live    *sim.LiveSplit
	ready   chan struct{} // closed at the first confirmed split, or when run ends
}

// newMonitor watches the split of namespace ns's experiment once run runs.
func newMonitor(ns string) *monitor {
	return &monitor{ready: make(chan struct{}),
		live: sim.NewLiveSplit(k8s, types.NamespacedName{Namespace: ns, Name: "checkout-redesign"})}
}

func (m *monitor) run(ctx context.Context) {
	var once sync.Once
	defer once.Do(func() { close(m.ready) })
	for ctx.Err() == nil {
		at := time.Now()
		if w, err := m.live.Refresh(ctx); err == nil {
			if m.live.Last() != nil {
				once.Do(func() { close(m.ready) })
			}
			m.mu.Lock()
			m.slowest = max(m.slowest, time.Since(at))
			if len(m.history) == 0 || fmt.Sprint(m.history[len(m.history)-1]) != fmt.Sprint(w) {
				m.history = append(m.history, w)
			}
			m.mu.Unlock()
		}
		time.Sleep(20 * time.Millisecond) // sampling the route as a gateway would see it
	}
}

// weights returns the last confirmed split (empty before the first).
func (m *monitor) weights() map[string]map[string]int32 {
	w, _ := m.current()
	return w
}

// sample returns the last confirmed split and a moment it was served. It
// waits for the first: a feeder that drew before it would send every answer
// to the control (no weights) and make a sample-ratio mismatch of its own.
// After run ended without one it returns an empty split.
func (m *monitor) sample() (map[string]map[string]int32, time.Time) {
	<-m.ready
	return m.current()
}

func (m *monitor) current() (map[string]map[string]int32, time.Time) {
	if s := m.live.Last(); s != nil {
		return s.Weights, s.At
	}
	return map[string]map[string]int32{}, time.Time{}
}

// checkMonotone checks, per segment, that the variant's weight only moves
// forward through the step weights, except to 0 (a rollback, for good) or to
// 100 (a promotion, for good).
func (m *monitor) checkMonotone(steps []int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	allowed := append([]int32{0, 100}, steps...)
	for _, seg := range []string{"enterprise", "new-customers"} {
		var seq []int32
		for _, h := range m.history {
			w := h[seg]["one-page"]
			Expect(allowed).To(ContainElement(w), "segment %s saw weight %d, not a step weight", seg, w)
			if len(seq) == 0 || seq[len(seq)-1] != w {
				seq = append(seq, w)
			}
		}
		GinkgoWriter.Printf("segment %s weights over time: %v (slowest read of the route %s)\n", seg, seq, m.slowest.Round(time.Millisecond))
		for i := 1; i < len(seq); i++ {
			prev, cur := seq[i-1], seq[i]
			switch {
			case prev == 0 && i > 1:
				Fail(fmt.Sprintf("segment %s: weight came back after a rollback: %v", seg, seq))
			case prev == 100:
				Fail(fmt.Sprintf("segment %s: weight changed after promotion: %v", seg, seq))
			case cur != 0 && cur < prev:
				Fail(fmt.Sprintf("segment %s: weight went backwards: %v", seg, seq))
			case cur != 0 && cur != 100 && slices.Index(steps, cur) != slices.Index(steps, prev)+1:
				Fail(fmt.Sprintf("segment %s: weight skipped a step: %v", seg, seq))
			}
		}
	}
}

// outcome summarises how an experiment ended, per segment.
func outcome(exp *cxv1.CXExperiment) string {
	var parts []string
	for _, s := range exp.Status.Segments {
		for _, v := range s.Variants[1:] {
			parts = append(parts, fmt.Sprintf("%s/%s=%s", s.Name, v.Name, v.State))
		}
	}
	sort.Strings(parts)
	if exp.Status.Phase == cxv1.PhaseFailed {
		for _, c := range exp.Status.Conditions {
			GinkgoWriter.Printf("condition %s=%s %s: %s\n", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	return string(exp.Status.Phase) + " " + strings.Join(parts, " ")
}

// tallyTotal reads the collector's durable count of the current run.
func tallyTotal(ns string) int64 {
	t := &cxv1.ResponseTally{}
	Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "checkout-redesign"}, t)).To(Succeed())
	return t.Spec.Total
}

func metaName(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }

// describe renders an experiment's status for failure messages: a compact
// summary first (a CI log repeats only a failure's first lines, see
// specs.Run), then the whole status.
func describe(ns string, f ...*feeder) func() string {
	return func() string {
		exp := getExp(ns)
		b, _ := json.MarshalIndent(exp.Status, "", "  ")
		out := summary(exp)
		for _, f := range f {
			out += "  " + f.String() + "\n"
		}
		return out + "experiment status:\n" + string(b)
	}
}

// ago is how long ago t was, for failure messages.
func ago(t time.Time) string {
	return time.Since(t).Round(100*time.Millisecond).String() + " ago"
}

// summary is one line for the run, one per segment and one with every
// condition.
func summary(exp *cxv1.CXExperiment) string {
	st := exp.Status
	since := func(t *metav1.Time) string {
		if t == nil {
			return "never"
		}
		return ago(t.Time)
	}
	t := &cxv1.ResponseTally{}
	total := "none"
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: exp.Namespace, Name: exp.Name}, t); err == nil {
		total = fmt.Sprint(t.Spec.Total)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "phase %s run %d step %d weight %d waiting %q; measured %s, step started %s; tally %s\n",
		st.Phase, st.Run, st.CurrentStep, st.StepWeight, st.Waiting, since(st.MeasuredAt), since(st.StepStartedAt), total)
	for _, s := range st.Segments {
		fmt.Fprintf(&sb, "  %s (epoch %d):", s.Name, s.Epoch)
		for _, v := range s.Variants {
			fmt.Fprintf(&sb, " %s n=%d w=%d %s %s diff %s %s;", v.Name, v.Responses, v.Weight, v.State, v.Verdict, v.Difference, v.DifferenceInterval)
		}
		sb.WriteString("\n")
	}
	var conds []string
	for _, c := range st.Conditions {
		conds = append(conds, fmt.Sprintf("%s=%s(%s)", c.Type, c.Status, c.Reason))
	}
	fmt.Fprintf(&sb, "  conditions: %s\n", strings.Join(conds, " "))
	return sb.String()
}

// logOnFailure prints, when the spec fails, the last lines of the managers'
// logs, condensed: one line per message with its first time and how many
// times it repeated in a row.
func logOnFailure(mgrs ...*utils.Manager) {
	DeferCleanup(func() {
		if !CurrentSpecReport().Failed() {
			return
		}
		for _, m := range mgrs {
			GinkgoWriter.Printf("manager log %s (condensed, last 60):\n%s", m.LogPath, condensedLog(m.LogPath, 60))
		}
	})
}

func condensedLog(path string, last int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error() + "\n"
	}
	// A line repeats the one before when it says the same after its
	// timestamp (the first 21 characters of a JSON line as rendered here).
	type line struct {
		text, key string
		n         int
	}
	var lines []line
	for _, raw := range strings.Split(string(data), "\n") {
		var e struct {
			TS, Level, Logger, Msg, Error string
		}
		text := raw
		if json.Unmarshal([]byte(raw), &e) == nil {
			if len(e.Error) > 160 {
				e.Error = e.Error[:160] + "..."
			}
			text = strings.TrimSpace(fmt.Sprintf("%s %s %s %s %s", e.TS, e.Level, e.Logger, e.Msg, e.Error))
		}
		if text == "" {
			continue
		}
		key := text
		if len(key) > 21 {
			key = key[21:]
		}
		if n := len(lines); n > 0 && lines[n-1].key == key {
			lines[n-1].n++
			continue
		}
		lines = append(lines, line{text, key, 1})
	}
	if len(lines) > last {
		lines = lines[len(lines)-last:]
	}
	var sb strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&sb, "  %4dx %s\n", l.n, l.text)
	}
	return sb.String()
}

// ended reports whether the run has ended. A sample-ratio mismatch stops
// the wait at once: none of these scenarios has one (the feeder draws with
// the live weights), and it holds its segment for the rest of the run, which
// then never ends by itself.
func ended(ns string) bool {
	exp := getExp(ns)
	if c := meta.FindStatusCondition(exp.Status.Conditions, cxv1.ConditionSampleRatioMismatch); c != nil && c.Status == metav1.ConditionTrue {
		StopTrying("a false sample-ratio mismatch holds a segment: " + c.Message).Now()
	}
	return exp.Status.Phase.Terminal()
}
