package prometheus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/prometheus/common/model"

	"github.com/rapport-dev/rapport/internal/measure"
)

// Guardrails reads guardrail values from Prometheus. The zero value is ready
// to use and safe for concurrent use; each GuardrailQuery carries its own
// address, query, timeout and token.
type Guardrails struct {
	// base is the HTTP transport (nil: the client library's default).
	base http.RoundTripper
}

var _ measure.GuardrailReader = (*Guardrails)(nil)

// NewGuardrails returns a guardrail reader.
func NewGuardrails() *Guardrails { return &Guardrails{} }

// Value renders the guardrail's query for the variant and segment of q, runs
// it and returns its value. The result must be a scalar or a vector of one
// sample. An empty vector, or NaN (e.g. a ratio without traffic), returns an
// error wrapping measure.ErrNoData: no evidence either way.
func (g *Guardrails) Value(ctx context.Context, q measure.GuardrailQuery) (float64, error) {
	if q.Guardrail == nil {
		return 0, errors.New("query prometheus: no guardrail given")
	}
	if q.Experiment == nil {
		return 0, fmt.Errorf("query prometheus for guardrail %s: no experiment given", q.Guardrail.Name)
	}
	pq := q.Guardrail.Prometheus
	what := fmt.Sprintf("guardrail %s of variant %s in segment %s", q.Guardrail.Name, q.Variant, q.Segment)
	c, err := newClient(pq, q.BearerToken, g.base)
	if err != nil {
		return 0, fmt.Errorf("query prometheus for %s: %w", what, err)
	}
	promql, err := Render(pq.Query, Vars{
		Variant:    q.Variant,
		Segment:    q.Segment,
		Namespace:  q.Experiment.Namespace,
		Experiment: q.Experiment.Name,
		Window:     q.Window,
	})
	if err != nil {
		return 0, fmt.Errorf("render the query of %s: %w", what, err)
	}
	val, err := c.query(ctx, promql, time.Time{})
	if err != nil {
		return 0, fmt.Errorf("query prometheus %s for %s: %w", c.address, what, err)
	}
	v, err := parseSingle(val)
	if err != nil {
		return 0, fmt.Errorf("query prometheus %s for %s: %w", c.address, what, err)
	}
	return v, nil
}

// parseSingle returns the value of a scalar or of a vector of one sample.
func parseSingle(val model.Value) (float64, error) {
	var f float64
	switch v := val.(type) {
	case *model.Scalar:
		f = float64(v.Value)
	case model.Vector:
		switch len(v) {
		case 0:
			return 0, fmt.Errorf("the query returned no sample: %w", measure.ErrNoData)
		case 1:
			if v[0].Histogram != nil {
				return 0, fmt.Errorf("sample %s is a native histogram, want a number", v[0].Metric)
			}
			f = float64(v[0].Value)
		default:
			return 0, fmt.Errorf("the query returned %d samples, want one; aggregate them, e.g. with max(...) or sum(...)", len(v))
		}
	default:
		return 0, fmt.Errorf("the query returned a %s, want a scalar or an instant vector of one sample", valueType(val))
	}
	if math.IsNaN(f) {
		return 0, fmt.Errorf("the query returned NaN (e.g. a ratio without traffic): %w", measure.ErrNoData)
	}
	return f, nil
}
