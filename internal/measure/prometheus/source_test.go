package prometheus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/measure"
	"github.com/rapport-dev/rapport/test/utils"
)

// csat5 is a CSAT scale 1..5.
var csat5 = cxv1.SatisfactionSettings{Metric: cxv1.MetricCSAT, ScoreMin: 1, ScoreMax: 5}

const tallyTemplate = `sum by (score) (responses{ns="{{ .Namespace }}",exp="{{ .Experiment }}",variant="{{ .Variant }}",segment="{{ .Segment }}"}[{{ .Window }}])`

func experiment() *cxv1.CXExperiment {
	return &cxv1.CXExperiment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout"}}
}

// vector returns a sample list in the Prometheus API format; each sample is
// "score=value" or "=value" for a sample without labels.
func vector(samples ...string) string {
	var parts []string
	for _, s := range samples {
		label, value, _ := strings.Cut(s, "=")
		metric := "{}"
		if label != "" {
			metric = fmt.Sprintf(`{"score":%q}`, label)
		}
		parts = append(parts, fmt.Sprintf(`{"metric":%s,"value":[1700000000,%q]}`, metric, value))
	}
	return apiResult("vector", "["+strings.Join(parts, ",")+"]")
}

func apiResult(resultType, result string) string {
	return fmt.Sprintf(`{"status":"success","data":{"resultType":%q,"result":%s}}`, resultType, result)
}

// fakeProm serves /api/v1/query with answer(query); it records the queries
// and Authorization headers it received.
type fakeProm struct {
	*httptest.Server
	mu      sync.Mutex
	queries []string
	auth    []string
}

func newFakeProm(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, query string)) *fakeProm {
	t.Helper()
	f := &fakeProm{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		q := r.FormValue("query")
		f.mu.Lock()
		f.queries = append(f.queries, q)
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		f.mu.Unlock()
		answer(w, r, q)
	}))
	t.Cleanup(f.Close)
	return f
}

// Queries returns the queries received so far.
func (f *fakeProm) Queries() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.queries)
}

// Auth returns the Authorization headers received so far.
func (f *fakeProm) Auth() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.auth)
}

func reply(body string) func(http.ResponseWriter, *http.Request, string) {
	return func(w http.ResponseWriter, _ *http.Request, _ string) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprint(w, body)
	}
}

func newTestSource(t *testing.T, address, tmpl, token string, timeout time.Duration) *Source {
	t.Helper()
	q := cxv1.PrometheusQuery{Address: address, Query: tmpl}
	if timeout > 0 {
		q.Timeout = &metav1.Duration{Duration: timeout}
	}
	s, err := NewSource(q, token)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseTallies(t *testing.T) {
	vec := func(samples ...string) model.Value {
		var v model.Vector
		for _, s := range samples {
			label, value, _ := strings.Cut(s, "=")
			m := model.Metric{}
			if label != "-" {
				m["score"] = model.LabelValue(label)
			}
			var f float64
			switch value {
			case "NaN":
				f = math.NaN()
			case "+Inf":
				f = math.Inf(1)
			case "-Inf":
				f = math.Inf(-1)
			default:
				if _, err := fmt.Sscan(value, &f); err != nil {
					t.Fatal(err)
				}
			}
			v = append(v, &model.Sample{Metric: m, Value: model.SampleValue(f)})
		}
		return v
	}
	t.Run("counts", func(t *testing.T) {
		got, err := parseTallies(vec("5=7.4", "4=2.5", "1=0.49", "2=0"), csat5)
		if err != nil {
			t.Fatal(err)
		}
		// Rounded to the nearest integer (half away from zero); score 3 absent is 0.
		if want := []int64{0, 0, 0, 3, 7}; !slices.Equal(got, want) {
			t.Errorf("counts = %v, want %v", got, want)
		}
	})
	t.Run("NPS scale from 0", func(t *testing.T) {
		nps := cxv1.SatisfactionSettings{Metric: cxv1.MetricNPS, ScoreMin: 0, ScoreMax: 10}
		got, err := parseTallies(vec("0=1", "10=2"), nps)
		if err != nil {
			t.Fatal(err)
		}
		if want := []int64{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}; !slices.Equal(got, want) {
			t.Errorf("counts = %v, want %v", got, want)
		}
	})
	t.Run("empty vector is no data", func(t *testing.T) {
		_, err := parseTallies(model.Vector{}, csat5)
		if !errors.Is(err, measure.ErrNoData) {
			t.Errorf("err = %v, want ErrNoData", err)
		}
	})
	for _, tc := range []struct {
		name string
		val  model.Value
		want string
	}{
		{"matrix", model.Matrix{}, "returned a range vector (matrix), want an instant vector"},
		{"scalar", &model.Scalar{Value: 3}, "returned a scalar, want an instant vector"},
		{"string", &model.String{Value: "x"}, "returned a string"},
		{"nil", nil, "returned a nothing"},
		{"no score label", vec("-=3"), `has no "score" label`},
		{"fractional score", vec("4.5=3"), `score="4.5" is not an integer score`},
		{"word score", vec("five=3"), `score="five" is not an integer score`},
		{"score below scale", vec("0=3"), "score 0 is outside the scale 1..5"},
		{"score above scale", vec("6=3"), "score 6 is outside the scale 1..5"},
		{"negative", vec("5=-1"), "value -1 is negative"},
		{"NaN", vec("5=NaN"), "value NaN is not a count"},
		{"+Inf", vec("5=+Inf"), "value +Inf is not a count"},
		{"-Inf", vec("5=-Inf"), "value -Inf is not a count"},
		{"too large", vec("5=1e300"), "too large"},
		{"duplicate score", vec("5=1", "4=1", "5=2"), "score 5 appears in more than one sample (3 samples in all)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseTallies(tc.val, csat5)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if errors.Is(err, measure.ErrNoData) {
				t.Errorf("err %v wraps ErrNoData", err)
			}
		})
	}
}

func TestSourceTallies(t *testing.T) {
	f := newFakeProm(t, func(w http.ResponseWriter, r *http.Request, q string) {
		switch {
		case strings.Contains(q, `variant="control",segment="vip"`):
			reply(vector("5=10", "4=2", "1=1"))(w, r, q)
		case strings.Contains(q, `variant="one-page",segment="vip"`):
			reply(vector("5=3.2"))(w, r, q)
		case strings.Contains(q, `segment="all"`), strings.Contains(q, `variant="control",segment="new"`):
			reply(vector("3=1"))(w, r, q)
		default: // one-page in new: no series
			reply(vector())(w, r, q)
		}
	})
	s := newTestSource(t, f.URL, tallyTemplate, "", 0)
	res, err := s.Tallies(context.Background(), measure.Query{
		Experiment: experiment(),
		Settings:   csat5,
		Segments:   []string{"vip", "new"},
		Variants:   []string{"control", "one-page"},
		Window:     90 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		seg, variant string
		want         []int64
	}{
		{"vip", "control", []int64{1, 0, 0, 2, 10}},
		{"vip", "one-page", []int64{0, 0, 0, 0, 3}},
		{"new", "control", []int64{0, 0, 1, 0, 0}},
		{"new", "one-page", nil},
	} {
		if got := res.Tallies.Get(tc.seg, tc.variant); !slices.Equal(got, tc.want) {
			t.Errorf("%s/%s = %v, want %v", tc.seg, tc.variant, got, tc.want)
		}
	}
	if want := []string{"new/one-page"}; !slices.Equal(res.Missing, want) {
		t.Errorf("Missing = %v, want %v", res.Missing, want)
	}
	if !res.LastResponseAt.IsZero() {
		t.Errorf("LastResponseAt = %v, want zero (unknown)", res.LastResponseAt)
	}
	want := `sum by (score) (responses{ns="shop",exp="checkout",variant="one-page",segment="vip"}[5400s])`
	if !slices.Contains(f.Queries(), want) {
		t.Errorf("queries %q do not contain %q", f.Queries(), want)
	}
	if len(f.Queries()) != 4 {
		t.Errorf("%d queries, want 4", len(f.Queries()))
	}
}

func TestSourceErrors(t *testing.T) {
	q := measure.Query{Experiment: experiment(), Settings: csat5, Segments: []string{"vip"}, Variants: []string{"one-page"}, Window: time.Minute}
	for _, tc := range []struct {
		name   string
		answer func(http.ResponseWriter, *http.Request, string)
		want   []string
	}{
		{
			name: "HTTP 500 with a text body",
			answer: func(w http.ResponseWriter, _ *http.Request, _ string) {
				http.Error(w, "upstream\nexploded", http.StatusInternalServerError)
			},
			want: []string{"server error: 500", `server said "upstream exploded"`},
		},
		{
			name: "HTTP 401",
			answer: func(w http.ResponseWriter, _ *http.Request, _ string) {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
			},
			want: []string{"client error: 401", "check bearerTokenSecretRef"},
		},
		{
			name: "bad PromQL refused by the server",
			answer: func(w http.ResponseWriter, _ *http.Request, _ string) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}`)
			},
			want: []string{"bad_data: 1:5: parse error: unexpected end of input", "the server refused the query"},
		},
		{
			name:   "matrix",
			answer: reply(apiResult("matrix", `[{"metric":{"score":"5"},"values":[[1700000000,"1"]]}]`)),
			want:   []string{"returned a range vector (matrix), want an instant vector"},
		},
		{
			name:   "no score label",
			answer: reply(vector("=4")),
			want:   []string{`sample {} has no "score" label`},
		},
		{
			name:   "not JSON",
			answer: func(w http.ResponseWriter, _ *http.Request, _ string) { _, _ = fmt.Fprint(w, "<html>") },
			want:   []string{"query prometheus"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeProm(t, tc.answer)
			s := newTestSource(t, f.URL, tallyTemplate, "", 0)
			_, err := s.Tallies(context.Background(), q)
			if err == nil {
				t.Fatal("Tallies succeeded, want an error")
			}
			prefix := fmt.Sprintf("query prometheus %s for variant one-page in segment vip: ", f.URL)
			t.Logf("error: %v", err)
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if errors.Is(err, measure.ErrNoData) {
				t.Errorf("error %v wraps ErrNoData", err)
			}
		})
	}
}

// closedAddress returns the URL of a port nothing listens on (outside the
// ephemeral range, so no connection of the test process can be using it).
func closedAddress(t *testing.T) string {
	t.Helper()
	addr, err := utils.ClosedAddr()
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

func TestSourceUnreachable(t *testing.T) {
	addr := closedAddress(t)
	s := newTestSource(t, addr, tallyTemplate, "", 0)
	_, err := s.Tallies(context.Background(), measure.Query{Experiment: experiment(), Settings: csat5, Segments: []string{"all"}, Variants: []string{"control"}})
	if err == nil {
		t.Fatal("Tallies succeeded, want an error")
	}
	for _, w := range []string{"query prometheus " + addr + " for variant control in segment all", "cannot reach the server", "connection refused"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

func TestSourceRenderError(t *testing.T) {
	f := newFakeProm(t, reply(vector("5=1")))
	s := newTestSource(t, f.URL, tallyTemplate, "", 0)
	_, err := s.Tallies(context.Background(), measure.Query{Experiment: experiment(), Settings: csat5, Segments: []string{"all"}, Variants: []string{`x"}`}})
	if err == nil || !strings.Contains(err.Error(), `render the query for variant x"} in segment all: variant "x\"}" cannot be put into a PromQL query`) {
		t.Fatalf("err = %v, want a render error", err)
	}
	if len(f.Queries()) != 0 {
		t.Errorf("queries %q sent, want none", f.Queries())
	}
}

func TestNewSourceErrors(t *testing.T) {
	for _, tc := range []struct {
		q    cxv1.PrometheusQuery
		want string
	}{
		{cxv1.PrometheusQuery{Address: "ftp://prom:9090", Query: "x"}, "want an http:// or https:// URL"},
		{cxv1.PrometheusQuery{Address: "prometheus:9090", Query: "x"}, "want an http:// or https:// URL"},
		{cxv1.PrometheusQuery{Address: "http://%zz", Query: "x"}, `prometheus address "http://%zz"`},
		{cxv1.PrometheusQuery{Address: "http://prom:9090", Query: "{{ .Variant "}, "parse query template"},
	} {
		if _, err := NewSource(tc.q, ""); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewSource(%+v) = %v, want an error containing %q", tc.q, err, tc.want)
		}
	}
}

func TestSourceBearerToken(t *testing.T) {
	f := newFakeProm(t, reply(vector("5=1")))
	q := measure.Query{Experiment: experiment(), Settings: csat5, Segments: []string{"all"}, Variants: []string{"control"}}
	if _, err := newTestSource(t, f.URL, tallyTemplate, "s3cret\n", 0).Tallies(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	if _, err := newTestSource(t, f.URL, tallyTemplate, "", 0).Tallies(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	if want := []string{"Bearer s3cret", ""}; !slices.Equal(f.Auth(), want) {
		t.Errorf("Authorization headers = %q, want %q", f.Auth(), want)
	}
}

// blockUntilCancelled answers only when the client gives up.
func blockUntilCancelled(_ http.ResponseWriter, r *http.Request, _ string) {
	<-r.Context().Done()
}

func TestSourceTimeout(t *testing.T) {
	f := newFakeProm(t, blockUntilCancelled)
	s := newTestSource(t, f.URL, tallyTemplate, "", time.Second)
	start := time.Now()
	_, err := s.Tallies(context.Background(), measure.Query{Experiment: experiment(), Settings: csat5, Segments: []string{"all"}, Variants: []string{"control"}})
	elapsed := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer within the timeout of 1s") {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if elapsed < time.Second || elapsed > 10*time.Second {
		t.Errorf("Tallies returned after %v, want about 1s", elapsed)
	}
	// The server's handler may be scheduled after the client gave up.
	waitFor(t, "the server to record the query", func() bool { return len(f.Queries()) >= 1 })
	if len(f.Queries()) != 1 {
		t.Fatalf("%d queries, want 1", len(f.Queries()))
	}
}

// waitFor polls cond for up to 10 s; tests never sleep to synchronise.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

// TestSourceTimeoutSentToServer: the timeout is also sent to the server,
// which bounds its own evaluation.
func TestSourceTimeoutSentToServer(t *testing.T) {
	timeouts := make(chan string, 1)
	f := newFakeProm(t, func(w http.ResponseWriter, r *http.Request, q string) {
		timeouts <- r.FormValue("timeout")
		reply(vector("5=1"))(w, r, q)
	})
	s := newTestSource(t, f.URL, tallyTemplate, "", 0)
	if _, err := s.Tallies(context.Background(), measure.Query{Experiment: experiment(), Settings: csat5, Segments: []string{"all"}, Variants: []string{"control"}}); err != nil {
		t.Fatal(err)
	}
	if got := <-timeouts; got != "10s" {
		t.Errorf("timeout parameter = %q, want the default 10s", got)
	}
}

func TestSourceCallerCancels(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cancel once the server holds the request.
	f := newFakeProm(t, func(w http.ResponseWriter, r *http.Request, q string) {
		cancel()
		blockUntilCancelled(w, r, q)
	})
	s := newTestSource(t, f.URL, tallyTemplate, "", time.Minute)
	_, err := s.Tallies(ctx, measure.Query{Experiment: experiment(), Settings: csat5, Segments: []string{"all"}, Variants: []string{"control"}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestSourceConcurrency holds requests in rounds of DefaultConcurrency: a
// round is released only when all of its requests are in flight, plus a short
// grace so that a request beyond the bound would be seen arriving. With a
// lower bound a round never fills and Tallies times out; with a higher one
// more requests are in flight at once.
func TestSourceConcurrency(t *testing.T) {
	const grace = 100 * time.Millisecond
	var (
		mu                                   sync.Mutex
		cond                                 = sync.NewCond(&mu)
		inFlight, maxInFlight, got, released int
	)
	const pairs = 3 * DefaultConcurrency
	f := newFakeProm(t, func(w http.ResponseWriter, r *http.Request, q string) {
		stop := context.AfterFunc(r.Context(), func() { mu.Lock(); cond.Broadcast(); mu.Unlock() })
		defer stop()
		mu.Lock()
		inFlight++
		got++
		maxInFlight = max(maxInFlight, inFlight)
		target := ((got-1)/DefaultConcurrency + 1) * DefaultConcurrency
		if got == target {
			mu.Unlock()
			<-time.After(grace)
			mu.Lock()
			released = target
			cond.Broadcast()
		}
		for released < target && r.Context().Err() == nil {
			cond.Wait()
		}
		inFlight--
		mu.Unlock()
		reply(vector("5=1"))(w, r, q)
	})
	s := newTestSource(t, f.URL, tallyTemplate, "", 10*time.Second)
	var variants []string
	for i := range pairs {
		variants = append(variants, fmt.Sprintf("v%d", i))
	}
	res, err := s.Tallies(context.Background(), measure.Query{Experiment: experiment(), Settings: csat5, Segments: []string{"all"}, Variants: variants})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tallies["all"]) != pairs {
		t.Errorf("%d tallies, want %d", len(res.Tallies["all"]), pairs)
	}
	if maxInFlight != DefaultConcurrency {
		t.Errorf("at most %d queries in flight, want %d", maxInFlight, DefaultConcurrency)
	}
}

// TestSourceFailsFast: the first real error is returned at once and the
// queries still running are cancelled, not waited for until their timeout.
func TestSourceFailsFast(t *testing.T) {
	f := newFakeProm(t, func(w http.ResponseWriter, r *http.Request, q string) {
		if strings.Contains(q, `variant="bad"`) {
			reply(vector("9=1"))(w, r, q)
			return
		}
		blockUntilCancelled(w, r, q)
	})
	s := newTestSource(t, f.URL, tallyTemplate, "", time.Minute)
	start := time.Now()
	_, err := s.Tallies(context.Background(), measure.Query{
		Experiment: experiment(), Settings: csat5, Segments: []string{"all"},
		Variants: []string{"a", "b", "bad", "c", "d", "e"},
	})
	if err == nil || !strings.Contains(err.Error(), "for variant bad in segment all: sample {score=\"9\"}: score 9 is outside the scale 1..5") {
		t.Fatalf("err = %v, want the score error of variant bad", err)
	}
	if elapsed := time.Since(start); elapsed > 30*time.Second {
		t.Errorf("Tallies took %v, want it to stop at the first error", elapsed)
	}
}

func TestSourceEmptyQuery(t *testing.T) {
	s := newTestSource(t, "http://127.0.0.1:1", tallyTemplate, "", 0)
	res, err := s.Tallies(context.Background(), measure.Query{Experiment: experiment(), Settings: csat5})
	if err != nil || len(res.Tallies) != 0 || len(res.Missing) != 0 {
		t.Errorf("Tallies of no pairs = %+v, %v; want an empty result", res, err)
	}
	if _, err := s.Tallies(context.Background(), measure.Query{Settings: csat5}); err == nil {
		t.Error("Tallies without an experiment succeeded, want an error")
	}
	if _, err := s.Tallies(context.Background(), measure.Query{Experiment: experiment(), Settings: cxv1.SatisfactionSettings{ScoreMin: 5, ScoreMax: 1}}); err == nil {
		t.Error("Tallies with an empty scale succeeded, want an error")
	}
}

// TestSourceTalliesByEpoch: each allocation epoch is read with its own
// window, evaluated at the epoch's end (now for the open one), and the run's
// total is their sum.
func TestSourceTalliesByEpoch(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	now := t0.Add(3 * time.Hour)
	var mu sync.Mutex
	seen := map[string]string{} // window -> evaluation time
	f := newFakeProm(t, func(w http.ResponseWriter, r *http.Request, q string) {
		window := q[strings.LastIndex(q, "[")+1 : strings.LastIndex(q, "]")]
		mu.Lock()
		seen[window] = r.FormValue("time")
		mu.Unlock()
		switch window {
		case "3600s": // epoch 1: 10:00-11:00
			reply(vector("5=10", "1=2"))(w, r, q)
		default: // epoch 2: 11:00-now (7200s)
			reply(vector("5=4"))(w, r, q)
		}
	})
	s := newTestSource(t, f.URL, tallyTemplate, "", 0)
	res, err := s.Tallies(context.Background(), measure.Query{
		Experiment: experiment(), Settings: csat5, Segments: []string{"vip"}, Variants: []string{"control"},
		Window: 3 * time.Hour, Now: now,
		Epochs: map[string][]measure.EpochWindow{"vip": {
			{Epoch: 1, Start: t0, End: t0.Add(time.Hour)},
			{Epoch: 2, Start: t0.Add(time.Hour)},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Epochs.Get("vip", 1, "control"); !slices.Equal(got, []int64{2, 0, 0, 0, 10}) {
		t.Errorf("epoch 1 = %v", got)
	}
	if got := res.Epochs.Get("vip", 2, "control"); !slices.Equal(got, []int64{0, 0, 0, 0, 4}) {
		t.Errorf("epoch 2 = %v", got)
	}
	if got := res.Tallies.Get("vip", "control"); !slices.Equal(got, []int64{2, 0, 0, 0, 14}) {
		t.Errorf("run total = %v", got)
	}
	parse := func(s string) time.Time {
		f, _ := strconv.ParseFloat(s, 64)
		return time.Unix(0, int64(f*1e9)).UTC()
	}
	if at := parse(seen["3600s"]); !at.Equal(t0.Add(time.Hour)) {
		t.Errorf("epoch 1 evaluated at %v, want its end %v", at, t0.Add(time.Hour))
	}
	if _, ok := seen["7200s"]; !ok {
		t.Errorf("the open epoch was not read with its window since 11:00: %v", seen)
	}
}

// TestQueryError: a failure is classified by what it is. An answer of the
// server stays the server's even when the caller's context is done by the
// time it is looked at (a sibling query of Tallies failing at that moment once
// turned a bad_data into "no answer within the timeout").
func TestQueryError(t *testing.T) {
	badData := &promv1.Error{Type: promv1.ErrBadData, Msg: "parse error"}
	refused := &url.Error{Op: "Post", URL: "http://p:9090", Err: errors.New("dial tcp: connection refused")}
	for _, tc := range []struct {
		name         string
		err, gaveUp  error
		want         string
		wantCanceled bool
		wantDeadline bool
	}{
		{name: "server answer, caller alive", err: badData, want: "bad_data: parse error (the server refused the query)"},
		{name: "server answer, caller cancelled meanwhile", err: badData, gaveUp: context.Canceled, want: "bad_data: parse error (the server refused the query)"},
		{name: "own timeout", err: &url.Error{Op: "Post", Err: context.DeadlineExceeded}, want: "no answer within the timeout of 5s (spec.prometheus.timeout): context deadline exceeded", wantDeadline: true},
		{name: "caller cancelled", err: &url.Error{Op: "Post", Err: context.Canceled}, gaveUp: context.Canceled, want: "cancelled: context canceled", wantCanceled: true},
		{name: "caller's deadline", err: context.DeadlineExceeded, gaveUp: context.DeadlineExceeded, want: "cancelled: context deadline exceeded", wantDeadline: true},
		{name: "unreachable", err: refused, want: "cannot reach the server: dial tcp: connection refused"},
		{name: "unreachable, caller cancelled meanwhile", err: refused, gaveUp: context.Canceled, want: "cannot reach the server: dial tcp: connection refused"},
		{name: "other", err: errors.New("boom"), want: "request failed: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := queryError(tc.err, tc.gaveUp, 5*time.Second)
			if err.Error() != tc.want {
				t.Errorf("got %q, want %q", err, tc.want)
			}
			if errors.Is(err, context.Canceled) != tc.wantCanceled || errors.Is(err, context.DeadlineExceeded) != tc.wantDeadline {
				t.Errorf("%v: Canceled %v DeadlineExceeded %v, want %v %v", err, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), tc.wantCanceled, tc.wantDeadline)
			}
		})
	}
}

// TestSourceRefusedQueryUnderConcurrency: every pair's query is refused by the
// server; whichever fails first, Tallies reports the server's refusal, never
// a timeout or a cancellation.
func TestSourceRefusedQueryUnderConcurrency(t *testing.T) {
	f := newFakeProm(t, func(w http.ResponseWriter, _ *http.Request, _ string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"parse error"}`)
	})
	s := newTestSource(t, f.URL, tallyTemplate, "", 10*time.Second)
	q := measure.Query{Experiment: experiment(), Settings: csat5, Segments: []string{"all", "vip", "new"}, Variants: []string{"control", "a", "b"}}
	for i := range 200 {
		_, err := s.Tallies(context.Background(), q)
		if err == nil || !strings.Contains(err.Error(), "the server refused the query") {
			t.Fatalf("run %d: err = %v, want the server's refusal", i, err)
		}
	}
}
