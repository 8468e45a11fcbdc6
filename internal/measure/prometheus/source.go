package prometheus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"text/template"
	"time"

	"github.com/prometheus/common/model"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/measure"
)

// ScoreLabel is the label holding the score in the result of a
// SatisfactionMetric query.
const ScoreLabel = "score"

// DefaultConcurrency is how many queries a Source runs at once.
const DefaultConcurrency = 4

// maxCount bounds a response count; larger values are certainly a wrong query
// (and would not fit an int64 exactly).
const maxCount = 1 << 53

// Source reads satisfaction tallies with the query of a SatisfactionMetric.
// It is safe for concurrent use.
type Source struct {
	client      *client
	tmpl        *template.Template
	concurrency int
}

var _ measure.Source = (*Source)(nil)

// NewSource returns a Source running q against q.Address, sending
// bearerToken (read by the caller from q.BearerTokenSecretRef) when it is not
// empty; surrounding whitespace, such as the newline a Secret file often ends
// with, is trimmed. It fails on a bad address or a template that does not
// parse; it does not contact the server.
func NewSource(q cxv1.PrometheusQuery, bearerToken string) (*Source, error) {
	return newSource(q, bearerToken, nil)
}

func newSource(q cxv1.PrometheusQuery, bearerToken string, base http.RoundTripper) (*Source, error) {
	c, err := newClient(q, bearerToken, base)
	if err != nil {
		return nil, err
	}
	t, err := compile(q.Query)
	if err != nil {
		return nil, err
	}
	return &Source{client: c, tmpl: t, concurrency: DefaultConcurrency}, nil
}

// pair is one (segment, variant, epoch) to read: the responses of customers
// served in the epoch's span, queried at its end with {{ .Window }} its
// length.
type pair struct {
	segment, variant string
	epoch            int32
	window           time.Duration
	at               time.Time // zero: now (a run without epochs)
}

// pairs lists what to read for q: every variant of every segment, once per
// allocation epoch of the segment (or once, since the run started, for a
// segment without epochs).
func pairs(q measure.Query, now time.Time) []pair {
	var out []pair
	for _, seg := range q.Segments {
		spans := q.Epochs[seg]
		for _, v := range q.Variants {
			if len(spans) == 0 {
				out = append(out, pair{segment: seg, variant: v, window: q.Window})
				continue
			}
			for _, sp := range spans {
				end := sp.End
				if end.IsZero() {
					end = now
				}
				// Evaluated at the very end its window was computed from, so
				// the span read is exactly [Start, end].
				w := max(end.Sub(sp.Start), time.Second)
				out = append(out, pair{segment: seg, variant: v, epoch: sp.Epoch, window: w, at: end})
			}
		}
	}
	return out
}

// Tallies runs the query once per segment, variant and allocation epoch of
// q. A (segment, variant) whose every query returns an empty vector is
// listed in Result.Missing. Any other failure of any query fails the whole
// read (and cancels the queries still running): a partial tally must not be
// judged as if it were complete.
func (s *Source) Tallies(ctx context.Context, q measure.Query) (measure.Result, error) {
	res := measure.Result{Tallies: measure.Tallies{}, Epochs: measure.EpochTallies{}}
	if q.Experiment == nil {
		return res, errors.New("query prometheus: no experiment given")
	}
	if q.Settings.Scores() < 1 {
		return res, fmt.Errorf("query prometheus: empty score scale %d..%d", q.Settings.ScoreMin, q.Settings.ScoreMax)
	}
	now := q.Now
	if now.IsZero() {
		now = s.client.now()
	}
	items := pairs(q, now)
	if len(items) == 0 {
		return res, nil
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	counts := make([][]int64, len(items))
	errs := make([]error, len(items))
	concurrency := s.concurrency
	if concurrency < 1 {
		concurrency = 1
	}
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i, p := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if err := ctx.Err(); err != nil {
			// A query failed or the caller gave up: start no more.
			for j := i; j < len(items); j++ {
				errs[j] = fmt.Errorf("query prometheus %s for variant %s in segment %s: not started: %w", s.client.address, items[j].variant, items[j].segment, context.Cause(ctx))
			}
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			vars := Vars{
				Variant:    p.variant,
				Segment:    p.segment,
				Namespace:  q.Experiment.Namespace,
				Experiment: q.Experiment.Name,
				Window:     p.window,
			}
			counts[i], errs[i] = s.readPair(ctx, vars, p.at, q.Settings)
			if errs[i] != nil && !errors.Is(errs[i], measure.ErrNoData) {
				cancel()
			}
		}()
	}
	wg.Wait()

	// Report the first real failure; errors of queries cancelled because of
	// it say nothing new.
	var cancelled error
	for i, err := range errs {
		switch {
		case err == nil:
			res.Epochs.Add(items[i].segment, items[i].epoch, items[i].variant, counts[i])
		case errors.Is(err, measure.ErrNoData):
		case errors.Is(err, context.Canceled) && cancelled == nil:
			cancelled = err
		case !errors.Is(err, context.Canceled):
			return measure.Result{}, err
		}
	}
	if cancelled != nil {
		return measure.Result{}, cancelled
	}
	sumEpochs(&res, q)
	return res, nil
}

// sumEpochs sets each (segment, variant)'s whole-run tally from its epochs,
// and lists those without any data in res.Missing.
func sumEpochs(res *measure.Result, q measure.Query) {
	for _, seg := range q.Segments {
		for _, v := range q.Variants {
			total := make([]int64, q.Settings.Scores())
			found := false
			for _, byVariant := range res.Epochs[seg] {
				if c, ok := byVariant[v]; ok {
					found = true
					for i, x := range c {
						total[i] += x
					}
				}
			}
			if !found {
				res.Missing = append(res.Missing, seg+"/"+v)
				continue
			}
			res.Tallies.Set(seg, v, total)
		}
	}
}

// readPair renders and runs the query of one variant in one segment at at
// (zero: now) and returns its counts per score, or an error wrapping
// measure.ErrNoData.
func (s *Source) readPair(ctx context.Context, v Vars, at time.Time, settings cxv1.SatisfactionSettings) ([]int64, error) {
	promql, err := execute(s.tmpl, v)
	if err != nil {
		return nil, fmt.Errorf("render the query for variant %s in segment %s: %w", v.Variant, v.Segment, err)
	}
	val, err := s.client.query(ctx, promql, at)
	if err != nil {
		return nil, fmt.Errorf("query prometheus %s for variant %s in segment %s: %w", s.client.address, v.Variant, v.Segment, err)
	}
	counts, err := parseTallies(val, settings)
	if err != nil {
		return nil, fmt.Errorf("query prometheus %s for variant %s in segment %s: %w", s.client.address, v.Variant, v.Segment, err)
	}
	return counts, nil
}

// parseTallies turns a query result into counts per score: counts[i] is the
// number of responses with score ScoreMin+i. The result must be an instant
// vector with at most one sample per score, labelled ScoreLabel with an
// integer of the scale; its value is rounded to the nearest integer because
// increase() and rate()-based queries extrapolate and return fractions.
// Scores without a sample count 0. An empty vector returns measure.ErrNoData.
func parseTallies(val model.Value, settings cxv1.SatisfactionSettings) ([]int64, error) {
	vec, ok := val.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("the query returned a %s, want an instant vector with one sample per score labelled %q, e.g. sum by (score) (...)", valueType(val), ScoreLabel)
	}
	if len(vec) == 0 {
		return nil, fmt.Errorf("the query returned no sample: %w", measure.ErrNoData)
	}
	counts := make([]int64, settings.Scores())
	seen := make([]bool, settings.Scores())
	for _, smp := range vec {
		raw, ok := smp.Metric[ScoreLabel]
		if !ok {
			return nil, fmt.Errorf("sample %s has no %q label; aggregate the responses by score, e.g. sum by (score) (...)", smp.Metric, ScoreLabel)
		}
		score, err := strconv.Atoi(string(raw))
		if err != nil {
			return nil, fmt.Errorf("sample %s: label %s=%q is not an integer score", smp.Metric, ScoreLabel, string(raw))
		}
		if score < settings.ScoreMin || score > settings.ScoreMax {
			return nil, fmt.Errorf("sample %s: score %d is outside the scale %d..%d", smp.Metric, score, settings.ScoreMin, settings.ScoreMax)
		}
		if smp.Histogram != nil {
			return nil, fmt.Errorf("sample %s is a native histogram, want a count of responses", smp.Metric)
		}
		f := float64(smp.Value)
		switch {
		case math.IsNaN(f) || math.IsInf(f, 0):
			return nil, fmt.Errorf("sample %s: value %v is not a count of responses", smp.Metric, f)
		case f < 0:
			return nil, fmt.Errorf("sample %s: value %v is negative, want a count of responses", smp.Metric, f)
		case f > maxCount:
			return nil, fmt.Errorf("sample %s: value %v is too large to be a count of responses", smp.Metric, f)
		}
		i := score - settings.ScoreMin
		if seen[i] {
			return nil, fmt.Errorf("score %d appears in more than one sample (%d samples in all); aggregate the responses by score, e.g. sum by (score) (...)", score, len(vec))
		}
		seen[i] = true
		counts[i] = int64(math.Round(f))
	}
	return counts, nil
}

// valueType names the type of a query result for messages.
func valueType(v model.Value) string {
	if v == nil {
		return "nothing"
	}
	switch v.Type() {
	case model.ValVector:
		return "instant vector"
	case model.ValMatrix:
		return "range vector (matrix)"
	case model.ValScalar:
		return "scalar"
	case model.ValString:
		return "string"
	}
	return v.Type().String()
}
