package prometheus

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/measure"
)

func ptr[T any](v T) *T { return &v }

const guardrailTemplate = `max(error_rate{variant="{{ .Variant }}",segment="{{ .Segment }}"})`

func guardrailQuery(address string) measure.GuardrailQuery {
	return measure.GuardrailQuery{
		Experiment: experiment(),
		Guardrail: &cxv1.Guardrail{
			Name:       "error-rate",
			Prometheus: cxv1.PrometheusQuery{Address: address, Query: guardrailTemplate},
			Max:        ptr("0.01"),
		},
		Segment: "all",
		Variant: "one-page",
		Window:  time.Minute,
	}
}

func TestGuardrailValue(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       float64
	}{
		{"vector of one sample", apiResult("vector", `[{"metric":{"variant":"one-page"},"value":[1700000000,"0.034"]}]`), 0.034},
		{"scalar", apiResult("scalar", `[1700000000,"2.5"]`), 2.5},
		{"+Inf", apiResult("scalar", `[1700000000,"+Inf"]`), math.Inf(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeProm(t, reply(tc.body))
			got, err := NewGuardrails().Value(context.Background(), guardrailQuery(f.URL))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Value = %v, want %v", got, tc.want)
			}
			if q := f.Queries(); len(q) != 1 || q[0] != `max(error_rate{variant="one-page",segment="all"})` {
				t.Errorf("queries = %q", q)
			}
		})
	}
}

func TestGuardrailValueErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		noData     bool
		want       string
	}{
		{"empty vector", vector(), true, "returned no sample"},
		{"NaN", apiResult("scalar", `[1700000000,"NaN"]`), true, "returned NaN"},
		{"three samples", vector("1=1", "2=1", "3=1"), false, "returned 3 samples, want one"},
		{"matrix", apiResult("matrix", `[]`), false, "returned a range vector (matrix), want a scalar or an instant vector of one sample"},
		{"string (refused by the client library)", apiResult("string", `[1700000000,"x"]`), false, `unexpected value type "string"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeProm(t, reply(tc.body))
			_, err := NewGuardrails().Value(context.Background(), guardrailQuery(f.URL))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			prefix := "query prometheus " + f.URL + " for guardrail error-rate of variant one-page in segment all: "
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
			if errors.Is(err, measure.ErrNoData) != tc.noData {
				t.Errorf("errors.Is(%v, ErrNoData) = %v, want %v", err, !tc.noData, tc.noData)
			}
		})
	}
}

func TestGuardrailValueRequest(t *testing.T) {
	t.Run("bearer token and timeout", func(t *testing.T) {
		f := newFakeProm(t, blockUntilCancelled)
		q := guardrailQuery(f.URL)
		q.BearerToken = "tok"
		q.Guardrail.Prometheus.Timeout = &metav1.Duration{Duration: time.Second}
		_, err := (&Guardrails{}).Value(context.Background(), q)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer within the timeout of 1s") {
			t.Fatalf("err = %v, want a timeout", err)
		}
		// The server's handler may be scheduled after the client gave up.
		waitFor(t, "the server to record the request", func() bool { return len(f.Auth()) >= 1 })
		if a := f.Auth(); len(a) != 1 || a[0] != "Bearer tok" {
			t.Errorf("Authorization headers = %q, want [Bearer tok]", a)
		}
	})
	t.Run("unsafe segment", func(t *testing.T) {
		q := guardrailQuery("http://127.0.0.1:1")
		q.Segment = `all"} or vector(0) #`
		_, err := NewGuardrails().Value(context.Background(), q)
		if err == nil || !strings.Contains(err.Error(), "render the query of guardrail error-rate") || !strings.Contains(err.Error(), "cannot be put into a PromQL query") {
			t.Fatalf("err = %v, want a render error", err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		addr := closedAddress(t)
		_, err := NewGuardrails().Value(context.Background(), guardrailQuery(addr))
		if err == nil || !strings.Contains(err.Error(), "query prometheus "+addr+" for guardrail error-rate") || !strings.Contains(err.Error(), "cannot reach the server") {
			t.Fatalf("err = %v, want an unreachable error", err)
		}
	})
	t.Run("bad address", func(t *testing.T) {
		_, err := NewGuardrails().Value(context.Background(), guardrailQuery("prometheus:9090"))
		if err == nil || !strings.Contains(err.Error(), "want an http:// or https:// URL") {
			t.Fatalf("err = %v, want an address error", err)
		}
	})
	t.Run("missing guardrail or experiment", func(t *testing.T) {
		if _, err := NewGuardrails().Value(context.Background(), measure.GuardrailQuery{}); err == nil {
			t.Error("no guardrail: want an error")
		}
		q := guardrailQuery("http://127.0.0.1:1")
		q.Experiment = nil
		if _, err := NewGuardrails().Value(context.Background(), q); err == nil {
			t.Error("no experiment: want an error")
		}
	})
	t.Run("HTTP 503", func(t *testing.T) {
		f := newFakeProm(t, func(w http.ResponseWriter, _ *http.Request, _ string) {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
		})
		_, err := NewGuardrails().Value(context.Background(), guardrailQuery(f.URL))
		if err == nil || !strings.Contains(err.Error(), "server error: 503") || errors.Is(err, measure.ErrNoData) {
			t.Fatalf("err = %v, want an HTTP error", err)
		}
	})
}

func TestParseSingleHistogram(t *testing.T) {
	_, err := parseSingle(model.Vector{{Metric: model.Metric{"a": "b"}, Histogram: &model.SampleHistogram{}}})
	if err == nil || !strings.Contains(err.Error(), "native histogram") {
		t.Fatalf("err = %v, want a histogram error", err)
	}
}
